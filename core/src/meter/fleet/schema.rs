// SPDX-License-Identifier: Apache-2.0
// The fleet store's schema and its migration.

use crate::Error;

use super::{retry, Fleet};

/// The schema version this code writes (`mm_schema`).
pub(crate) const SCHEMA_VERSION: i32 = 1;

/// Migrations: entry `i` moves the schema from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE mm_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE mm_commits (
    replica text        NOT NULL,
    session text        NOT NULL,
    seq     bigint      NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (replica, session, seq)
);
CREATE TABLE mm_partials (
    product_code  text   NOT NULL,
    hour          bigint NOT NULL,
    license_arn   text   NOT NULL,
    customer_kind text   NOT NULL,
    customer      text   NOT NULL,
    dimension     text   NOT NULL,
    replica       text   NOT NULL,
    quantity      bigint NOT NULL,
    PRIMARY KEY (product_code, hour, license_arn, customer_kind, customer, dimension, replica)
);
CREATE TABLE mm_partial_allocs (
    product_code  text   NOT NULL,
    hour          bigint NOT NULL,
    license_arn   text   NOT NULL,
    customer_kind text   NOT NULL,
    customer      text   NOT NULL,
    dimension     text   NOT NULL,
    replica       text   NOT NULL,
    tags          text   NOT NULL,
    quantity      bigint NOT NULL,
    PRIMARY KEY (product_code, hour, license_arn, customer_kind, customer, dimension, replica, tags)
);
CREATE TABLE mm_sealed_hours (
    product_code text        NOT NULL,
    hour         bigint      NOT NULL,
    sealed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_code, hour)
);
CREATE TABLE mm_buckets (
    id                 bigserial PRIMARY KEY,
    product_code       text    NOT NULL,
    license_arn        text    NOT NULL,
    customer_kind      text    NOT NULL,
    customer           text    NOT NULL,
    dimension          text    NOT NULL,
    hour               bigint  NOT NULL,
    quantity           bigint  NOT NULL,
    allocations        text,
    state              text    NOT NULL DEFAULT 'sealed'
        CHECK (state IN ('sealed', 'sending', 'acked', 'dead_lettered', 'expired')),
    claim              bigint  NOT NULL DEFAULT 0,
    claimed_by         text,
    lease_until        timestamptz,
    attempts           integer NOT NULL DEFAULT 0,
    alarmed            boolean NOT NULL DEFAULT false,
    metering_record_id text,
    sealed_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (product_code, license_arn, customer_kind, customer, dimension, hour)
);
CREATE INDEX mm_buckets_by_state ON mm_buckets (product_code, state, hour);
CREATE SEQUENCE mm_claims;
CREATE FUNCTION mm_sealed_quantity_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.quantity IS DISTINCT FROM OLD.quantity
       OR NEW.allocations IS DISTINCT FROM OLD.allocations
       OR NEW.product_code IS DISTINCT FROM OLD.product_code
       OR NEW.license_arn IS DISTINCT FROM OLD.license_arn
       OR NEW.customer_kind IS DISTINCT FROM OLD.customer_kind
       OR NEW.customer IS DISTINCT FROM OLD.customer
       OR NEW.dimension IS DISTINCT FROM OLD.dimension
       OR NEW.hour IS DISTINCT FROM OLD.hour THEN
        RAISE EXCEPTION 'a sealed quantity never changes';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER mm_buckets_sealed_quantity_frozen BEFORE UPDATE ON mm_buckets
    FOR EACH ROW EXECUTE FUNCTION mm_sealed_quantity_frozen();
CREATE TABLE mm_dead_letters (
    id            bigserial PRIMARY KEY,
    bucket_id     bigint NOT NULL,
    product_code  text   NOT NULL,
    license_arn   text   NOT NULL,
    customer_kind text   NOT NULL,
    customer      text   NOT NULL,
    dimension     text   NOT NULL,
    hour          bigint NOT NULL,
    quantity      bigint NOT NULL,
    reason        text   NOT NULL,
    message       text   NOT NULL,
    at            bigint NOT NULL
);
CREATE TABLE mm_registered (
    product_code   text   NOT NULL,
    license_arn    text   NOT NULL,
    customer_kind  text   NOT NULL,
    customer       text   NOT NULL,
    dimension      text   NOT NULL,
    from_hour      bigint NOT NULL,
    filled_through bigint NOT NULL,
    PRIMARY KEY (product_code, license_arn, customer_kind, customer, dimension)
);
"#];

impl Fleet {
    pub(super) async fn migrate(&self) -> Result<(), Error> {
        retry(self, "migrate", |mut c| async move {
            let r = async {
                let tx = c.transaction().await?;
                tx.batch_execute(
                    "SELECT pg_advisory_xact_lock(hashtext('mm_schema'));
                     CREATE TABLE IF NOT EXISTS mm_schema (version integer NOT NULL);",
                )
                .await?;
                let v: Option<i32> = tx
                    .query_one("SELECT max(version) FROM mm_schema", &[])
                    .await?
                    .get(0);
                let v = v.unwrap_or(0);
                if v > SCHEMA_VERSION {
                    return Ok(Some(v));
                }
                for (i, sql) in MIGRATIONS.iter().enumerate().skip(v as usize) {
                    tx.batch_execute(sql).await?;
                    tx.execute(
                        "INSERT INTO mm_schema (version) VALUES ($1)",
                        &[&(i as i32 + 1)],
                    )
                    .await?;
                }
                tx.execute(
                    "INSERT INTO mm_meta (key, value) VALUES ('library_version', $1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[&crate::VERSION],
                )
                .await?;
                tx.commit().await?;
                Ok(None)
            }
            .await;
            (c, r)
        })
        .await
        .and_then(|newer| match newer {
            Some(v) => Err(Error::invalid_state(format!(
                "fleet store: schema version {v} is newer than this library's {SCHEMA_VERSION}"
            ))),
            None => Ok(()),
        })
    }
}

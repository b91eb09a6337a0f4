// SPDX-License-Identifier: Apache-2.0
// The fleet store's schema and its migration.

use std::sync::atomic::Ordering;

use crate::Error;

use super::{retry_within, Fleet, LONG_ATTEMPT_FOR};

/// The schema version this code writes (`mm_schema`).
pub(crate) const SCHEMA_VERSION: i32 = 1;

/// Makes the fleet's identity (`mm_meta.store_id`) unless it has one.
pub(super) const MAKE_STORE_ID: &str = "INSERT INTO mm_meta (key, value)
     VALUES ('store_id', md5(random()::text || clock_timestamp()::text)) ON CONFLICT DO NOTHING";

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

// The write functions' shared text. `add_head!` declares, takes the commit key and the
// hours' shared locks, and lands each entry in its hour (or the first open one after it);
// `add_partials!` adds into the replica's partial rows, checking a bucket's whole sum once
// the replica's partial passes the given threshold.
macro_rules! add_params {
    () => {
        "p_replica text, p_session text, p_seq bigint, p_product text, p_current bigint,
    p_locked bigint[], p_keys int4[], p_license text[], p_kind text[], p_customer text[], p_dimension text[],
    p_hour bigint[], p_quantity bigint[],
    p_alloc_entry int4[], p_alloc_tags text[], p_alloc_quantity bigint[]"
    };
}

macro_rules! add_head {
    () => {
        r#"
DECLARE
    v_landed bigint[] := p_hour;
    v_locked bigint[];
    v_sealed bigint[];
    v_h bigint;
    v_step int;
    v_big bigint;
    v_over text := '';
BEGIN
    INSERT INTO mm_commits (replica, session, seq) VALUES (p_replica, p_session, p_seq)
        ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- Shared locks on every hour written and the current one, ascending; the sealed
    -- check follows them (READ COMMITTED: it sees any seal that committed before).
    -- p_locked: the entries' hours and the current one, distinct and ascending; p_keys:
    -- their lock keys (the sealer's). A function scan returns an array in order.
    v_locked := p_locked;
    PERFORM pg_advisory_xact_lock_shared(hashtext(p_product), k) FROM unnest(p_keys) AS k;
    v_sealed := ARRAY(SELECT hour FROM mm_sealed_hours
                      WHERE product_code = p_product AND hour = ANY(v_locked));
    IF cardinality(v_sealed) > 0 THEN
        FOR i IN 1 .. cardinality(p_hour) LOOP
            CONTINUE WHEN NOT p_hour[i] = ANY(v_sealed);
            v_h := greatest(p_current, p_hour[i]);
            v_step := 0;
            LOOP
                IF NOT v_h = ANY(v_locked) THEN
                    PERFORM pg_advisory_xact_lock_shared(hashtext(p_product),
                                                         (v_h / 3600)::int4);
                    v_locked := v_locked || v_h;
                    v_sealed := v_sealed || ARRAY(SELECT hour FROM mm_sealed_hours
                                                  WHERE product_code = p_product AND hour = v_h);
                END IF;
                EXIT WHEN NOT v_h = ANY(v_sealed);
                v_step := v_step + 1;
                -- Two days of sealed hours in a row (a writer's clock far behind the
                -- fleet's): on to the hour after the newest sealed one, checked as any.
                v_h := CASE WHEN v_step < 48 THEN v_h + 3600
                            ELSE greatest(v_h + 3600,
                                          (SELECT max(hour) + 3600 FROM mm_sealed_hours
                                           WHERE product_code = p_product)) END;
            END LOOP;
            v_landed[i] := v_h;
        END LOOP;
    END IF;"#
    };
}

/// The landed entries as one journal row, and the function's return.
macro_rules! journal_row {
    () => {
        "
        INSERT INTO mm_journal (product_code, replica, license_arn, customer_kind, customer,
                                dimension, hour, quantity, alloc_entry, alloc_tags,
                                alloc_quantity)
        VALUES (p_product, p_replica, p_license, p_kind, p_customer, p_dimension, v_landed,
                p_quantity, p_alloc_entry, p_alloc_tags, p_alloc_quantity);
        RETURN v_landed;"
    };
}

/// Adds the write's allocations into the replica's partial allocation rows.
macro_rules! add_allocs {
    () => {
        r#"
    IF cardinality(p_alloc_entry) > 0 THEN
        INSERT INTO mm_partial_allocs AS a (product_code, hour, license_arn, customer_kind,
                                            customer, dimension, replica, tags, quantity)
        SELECT p_product, e.h, e.l, e.k, e.c, e.d, p_replica, t.g, sum(t.q)::bigint
        FROM unnest(p_alloc_entry, p_alloc_tags, p_alloc_quantity) AS t(i, g, q)
        JOIN unnest(p_license, p_kind, p_customer, p_dimension, v_landed)
             WITH ORDINALITY AS e(l, k, c, d, h, i) ON e.i = t.i
        GROUP BY e.h, e.l, e.k, e.c, e.d, t.g
        ORDER BY 2, 3, 4, 5, 6, 8
        ON CONFLICT (product_code, hour, license_arn, customer_kind, customer, dimension,
                     replica, tags)
        DO UPDATE SET quantity = a.quantity + excluded.quantity;
    END IF;"#
    };
}

macro_rules! add_partials {
    ($threshold:literal, $pending:literal) => {
        concat!(
            r#"
    -- One row per bucket, in key order (two writes of one replica never deadlock).
    -- (Arrays are zipped with unnest: a subscript of a text array walks it from the start.)
    WITH t AS (
        SELECT l, k, c, d, h, sum(q)::bigint AS q
        FROM unnest(p_license, p_kind, p_customer, p_dimension, v_landed, p_quantity)
             AS e(l, k, c, d, h, q)
        GROUP BY l, k, c, d, h
    ), up AS (
        INSERT INTO mm_partials AS p (product_code, hour, license_arn, customer_kind, customer,
                                      dimension, replica, quantity)
        SELECT p_product, h, l, k, c, d, p_replica, q FROM t ORDER BY h, l, k, c, d
        ON CONFLICT (product_code, hour, license_arn, customer_kind, customer, dimension, replica)
        DO UPDATE SET quantity = p.quantity + excluded.quantity
        RETURNING p.quantity
    )
    SELECT count(*) INTO v_big FROM up WHERE up.quantity > "#,
            $threshold,
            r#";
    IF v_big > 0 THEN
        SELECT COALESCE(string_agg(i || ':' || total, ','), '') INTO v_over
        FROM (SELECT e.i, (SELECT COALESCE(sum(p.quantity), 0)::bigint FROM mm_partials p
                           WHERE p.product_code = p_product AND p.hour = e.h
                             AND p.license_arn = e.l AND p.customer_kind = e.k
                             AND p.customer = e.c AND p.dimension = e.d) + "#,
            $pending,
            r#" AS total
              FROM unnest(p_license, p_kind, p_customer, p_dimension, v_landed)
                   WITH ORDINALITY AS e(l, k, c, d, h, i)) x
        WHERE total > 2147483647;
        IF v_over <> '' THEN
            RAISE EXCEPTION 'a bucket would pass the maximum quantity'
                USING ERRCODE = 'MM001', DETAIL = v_over;
        END IF;
    END IF;"#,
            add_allocs!(),
            r#"
    RETURN v_landed;"#
        )
    };
}

/// The write function of the release two back, created when absent: its replicas call it,
/// so they run beside this release's on one store (a rolling upgrade). Each function's name
/// carries its version: a changed body gets a new name, and no schema version step is
/// needed (a schema step would make the previous release refuse the store). PL/pgSQL keeps
/// its plans per session, and a write is one statement, so one round trip.
///
/// Returns, for each entry, the hour it was counted in (its own unless that hour was
/// sealed: then the first open hour from `p_current` on), or NULL when the commit key is
/// already there (an earlier attempt committed). Raises SQLSTATE MM001, DETAIL
/// `entry:sum,...` (entries from 1), and adds nothing, when an entry's bucket would pass
/// the model's maximum (2^31 - 1). A replica's partial past 2^24 has its bucket's whole
/// sum checked; below that, 128 replicas could not pass the maximum together.
pub(super) const ADD_V1_FUNCTION: &str = concat!(
    "CREATE FUNCTION mm_add_v1(",
    add_params!(),
    ")\nRETURNS bigint[] LANGUAGE plpgsql AS $$",
    add_head!(),
    add_partials!("16777216", "0"),
    "\nEND $$;\n"
);

/// The previous release's write function (its replicas call it during a rolling upgrade;
/// they do not look for `mm_add_v3`'s marks). With `p_journal`, the landed entries go into
/// the journal (`mm_journal`) as one row: an append, whatever the number of buckets, where
/// adding into partial rows costs an index lookup and a row update per bucket. Without it,
/// they are added into the partial rows as `mm_add_v1` does, and a bucket's whole sum is
/// checked against the maximum once the replica's partial passes 2^23. That sum counts,
/// besides every partial row, `p_pending`: at least what this session journaled into the
/// bucket (the writer's count, see `write.rs`), which no partial holds until a fold; for
/// an entry moved to a later hour, the most a session journals into a bucket (2^23). A
/// session journals into a bucket only while that count stays within 2^23, so a replica
/// adds at most 2^24 to a bucket unchecked, as under `mm_add_v1`, and a lone replica's own
/// journaled additions are never missed by the check.
pub(super) const ADD_V2_FUNCTION: &str = concat!(
    "CREATE FUNCTION mm_add_v2(",
    add_params!(),
    ", p_journal boolean, p_pending bigint[])\nRETURNS bigint[] LANGUAGE plpgsql AS $$",
    add_head!(),
    "\n    IF p_journal THEN",
    journal_row!(),
    "\n    END IF;",
    add_partials!(
        "8388608",
        "CASE WHEN e.h = p_hour[e.i] THEN p_pending[e.i] ELSE 8388608 END"
    ),
    "\nEND $$;\n"
);

/// A bucket's entries as a relation `t(l, k, c, d, h, q)`, one row per bucket (a write may
/// name a bucket twice when an entry landed in a later hour).
macro_rules! write_buckets {
    () => {
        "(SELECT l, k, c, d, h, sum(q)::bigint AS q
          FROM unnest(p_license, p_kind, p_customer, p_dimension, v_landed, p_quantity)
               AS e(l, k, c, d, h, q)
          GROUP BY l, k, c, d, h) t"
    };
}

/// `p`'s row is `t`'s bucket.
macro_rules! same_bucket {
    ($p:literal, $t:literal) => {
        concat!(
            $p,
            ".product_code = p_product AND ",
            $p,
            ".hour = ",
            $t,
            ".h AND ",
            $p,
            ".license_arn = ",
            $t,
            ".l AND ",
            $p,
            ".customer_kind = ",
            $t,
            ".k AND ",
            $p,
            ".customer = ",
            $t,
            ".c AND ",
            $p,
            ".dimension = ",
            $t,
            ".d"
        )
    };
}

/// 2^30: a bucket whose sum passes it is marked checked (see [`ADD_V3_FUNCTION`]).
macro_rules! two_30 {
    () => {
        "1073741824"
    };
}

/// Whether `t`'s bucket's sum (every partial row) is past 2^30.
macro_rules! past_2_30 {
    () => {
        concat!(
            "(SELECT sum(p.quantity) FROM mm_partials p WHERE ",
            same_bucket!("p", "t"),
            ") > ",
            two_30!()
        )
    };
}

/// Whether this write would take its replica past 2^23 in `t`'s bucket, or the bucket's
/// sum past 2^30.
macro_rules! past_unchecked {
    () => {
        concat!(
            "(t.q + COALESCE((SELECT p.quantity FROM mm_partials p WHERE ",
            same_bucket!("p", "t"),
            " AND p.replica = p_replica), 0) > 8388608
             OR t.q + COALESCE((SELECT sum(p.quantity) FROM mm_partials p WHERE ",
            same_bucket!("p", "t"),
            "), 0) > ",
            two_30!(),
            ")"
        )
    };
}

/// Folds the journal (`mm_fold_v2`) and marks what the fold took past 2^30; the caller holds
/// the product's exclusive write lock and the fold's lock.
macro_rules! fold_and_mark {
    () => {
        "
    INSERT INTO mm_partials (product_code, hour, license_arn, customer_kind, customer,
                             dimension, replica, quantity)
    SELECT p_product, f.o_hour, f.o_license, f.o_kind, f.o_customer, f.o_dimension, '', 0
    FROM mm_fold_v2(p_product, true) AS f
    ORDER BY 2, 3, 4, 5, 6
    ON CONFLICT DO NOTHING;"
    };
}

/// This release's write function. A bucket is *checked* once a partial row of replica ''
/// (quantity 0, a marker: replica ids are never empty) is in `mm_partials`: from then on
/// every write into it adds into the partial rows and sums the bucket against the model's
/// maximum, and none goes to the journal. A write into the partial rows that would take
/// its replica's partial past 2^23, or the bucket's sum past 2^30, marks it: under the
/// product's exclusive write lock (key -2000000001; every other write of this release
/// holds it shared, so none is in flight), it folds the journal and inserts the marker, so
/// the bucket's rows then hold all it was given. It only tries the fold's lock: a sealer
/// holds that while it waits for hours' locks, maybe this write's, and this write must not
/// hold every writer of the product off meanwhile (SQLSTATE 55P03, retried). Buckets
/// grown through the journal are marked by the sealer ([`FOLD_V2_FUNCTION`],
/// [`MARK_FUNCTION`]). Checks of one bucket take turns on its marker (`FOR UPDATE`, in
/// key order, after the write's own rows and allocations: a write holding a marker then
/// waits for nothing), so two adds never both miss the other's share. Below the mark a
/// replica adds at most 2^23 to a bucket through its partial rows and 2^23 a session
/// through the journal (`write.rs`), unchecked.
///
/// With `p_journal`, and no entry's bucket checked, the landed entries go into the journal
/// as one row: an append, whatever the number of buckets. Otherwise they add into the
/// partial rows.
///
/// Returns, raises and refuses as `mm_add_v2`; also raises SQLSTATE 55P03 (retried) when it
/// would mark a bucket while a seal or fold holds the fold's lock.
pub(super) const ADD_V3_FUNCTION: &str = concat!(
    "CREATE FUNCTION mm_add_v3(",
    add_params!(),
    ", p_journal boolean)\nRETURNS bigint[] LANGUAGE plpgsql AS $$",
    add_head!(),
    r#"
    IF p_journal THEN
        PERFORM pg_advisory_xact_lock_shared(hashtext(p_product), -2000000001);
        IF NOT EXISTS (SELECT 1 FROM "#,
    write_buckets!(),
    " JOIN mm_partials m ON ",
    same_bucket!("m", "t"),
    " AND m.replica = '') THEN",
    journal_row!(),
    r#"
        END IF;
    ELSE
        SELECT count(*) INTO v_big FROM "#,
    write_buckets!(),
    "\n        WHERE ",
    past_unchecked!(),
    "\n          AND NOT EXISTS (SELECT 1 FROM mm_partials m WHERE ",
    same_bucket!("m", "t"),
    r#" AND m.replica = '');
        IF v_big > 0 THEN
            PERFORM pg_advisory_xact_lock(hashtext(p_product), -2000000001);
            -- A sealer holds the fold's lock while it waits for hours' locks (this write's
            -- among them): never wait for it here, holding every writer of the product off.
            IF NOT pg_try_advisory_xact_lock(hashtext(p_product), -2000000000) THEN
                RAISE EXCEPTION 'a seal or fold of this product is running; try again'
                    USING ERRCODE = '55P03';
            END IF;
            -- The fold, marking what it takes past 2^30 (this write holds the write lock).
"#,
    fold_and_mark!(),
    r#"
            INSERT INTO mm_partials (product_code, hour, license_arn, customer_kind, customer,
                                     dimension, replica, quantity)
            SELECT p_product, t.h, t.l, t.k, t.c, t.d, '', 0 FROM "#,
    write_buckets!(),
    "\n            WHERE ",
    past_unchecked!(),
    r#"
            ORDER BY 2, 3, 4, 5, 6
            ON CONFLICT DO NOTHING;
        ELSE
            PERFORM pg_advisory_xact_lock_shared(hashtext(p_product), -2000000001);
        END IF;
    END IF;
    INSERT INTO mm_partials AS p (product_code, hour, license_arn, customer_kind, customer,
                                  dimension, replica, quantity)
    SELECT p_product, t.h, t.l, t.k, t.c, t.d, p_replica, t.q FROM "#,
    write_buckets!(),
    r#"
    ORDER BY 2, 3, 4, 5, 6
    ON CONFLICT (product_code, hour, license_arn, customer_kind, customer, dimension, replica)
    DO UPDATE SET quantity = p.quantity + excluded.quantity;"#,
    add_allocs!(),
    r#"
    -- The checked buckets' markers, in key order; then their sums (a new snapshot: every
    -- add that held a marker before this one has committed).
    PERFORM 1 FROM mm_partials m
    WHERE m.product_code = p_product AND m.replica = ''
      AND (m.hour, m.license_arn, m.customer_kind, m.customer, m.dimension) IN
          (SELECT e.h, e.l, e.k, e.c, e.d
           FROM unnest(p_license, p_kind, p_customer, p_dimension, v_landed) AS e(l, k, c, d, h))
    ORDER BY m.hour, m.license_arn, m.customer_kind, m.customer, m.dimension
    FOR UPDATE;
    IF FOUND THEN
        SELECT COALESCE(string_agg(i || ':' || total, ','), '') INTO v_over
        FROM (SELECT t.i, (SELECT COALESCE(sum(p.quantity), 0)::bigint FROM mm_partials p
                           WHERE "#,
    same_bucket!("p", "t"),
    r#") AS total
              FROM unnest(p_license, p_kind, p_customer, p_dimension, v_landed)
                   WITH ORDINALITY AS t(l, k, c, d, h, i)
              WHERE EXISTS (SELECT 1 FROM mm_partials m WHERE "#,
    same_bucket!("m", "t"),
    r#" AND m.replica = '')) x
        WHERE total > 2147483647;
        IF v_over <> '' THEN
            RAISE EXCEPTION 'a bucket would pass the maximum quantity'
                USING ERRCODE = 'MM001', DETAIL = v_over;
        END IF;
    END IF;
    RETURN v_landed;
END $$;
"#
);

/// The journal: one row per journaled write, its entries as arrays (already landed in
/// their hours), folded into the partial rows by `mm_fold_v1` or `mm_fold_v2`.
const JOURNAL_TABLE: &str = r#"
CREATE TABLE mm_journal (
    product_code   text     NOT NULL,
    replica        text     NOT NULL,
    license_arn    text[]   NOT NULL,
    customer_kind  text[]   NOT NULL,
    customer       text[]   NOT NULL,
    dimension      text[]   NOT NULL,
    hour           bigint[] NOT NULL,
    quantity       bigint[] NOT NULL,
    alloc_entry    int4[]   NOT NULL,
    alloc_tags     text[]   NOT NULL,
    alloc_quantity bigint[] NOT NULL
);
"#;

/// Moves every committed journal row of a product into the partial rows, in one
/// statement: the rows it deletes are the rows it adds, so a journal row is folded
/// exactly once whoever folds and whenever a folder dies. One folder at a time per product
/// (an advisory lock on a key no hour has); `p_wait` false returns 0 at once when another
/// holds it. It runs with its owner's rights (a runtime role may call it having been
/// granted nothing on the journal), on the schema it was made in.
macro_rules! fold_function {
    ($name:literal, $returns:literal, $none:literal, $declare:literal, $returning:literal,
     $tail:expr) => {
        concat!(
            "\nCREATE FUNCTION ",
            $name,
            "(p_product text, p_wait boolean)\nRETURNS ",
            $returns,
            r#" LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_rows bigint;"#,
            $declare,
            r#"
BEGIN
    IF p_wait THEN
        PERFORM pg_advisory_xact_lock(hashtext(p_product), -2000000000);
    ELSIF NOT pg_try_advisory_xact_lock(hashtext(p_product), -2000000000) THEN
        RETURN"#,
            $none,
            r#";
    END IF;
    WITH j AS (
        DELETE FROM mm_journal WHERE product_code = p_product
        RETURNING replica, license_arn, customer_kind, customer, dimension, hour, quantity,
                  alloc_entry, alloc_tags, alloc_quantity
    ), parts AS (
        INSERT INTO mm_partials AS p (product_code, hour, license_arn, customer_kind, customer,
                                      dimension, replica, quantity)
        SELECT p_product, e.h, e.l, e.k, e.c, e.d, j.replica, sum(e.q)::bigint
        FROM j, unnest(j.license_arn, j.customer_kind, j.customer, j.dimension, j.hour,
                       j.quantity) AS e(l, k, c, d, h, q)
        GROUP BY e.h, e.l, e.k, e.c, e.d, j.replica
        ORDER BY 2, 3, 4, 5, 6, 7
        ON CONFLICT (product_code, hour, license_arn, customer_kind, customer, dimension, replica)
        DO UPDATE SET quantity = p.quantity + excluded.quantity"#,
            $returning,
            r#"
    ), allocs AS (
        INSERT INTO mm_partial_allocs AS a (product_code, hour, license_arn, customer_kind,
                                            customer, dimension, replica, tags, quantity)
        SELECT p_product, x.h, x.l, x.k, x.c, x.d, j.replica, x.g, sum(x.q)::bigint
        FROM j, LATERAL (
            SELECT e.h, e.l, e.k, e.c, e.d, t.g, t.q
            FROM unnest(j.alloc_entry, j.alloc_tags, j.alloc_quantity) AS t(i, g, q)
            JOIN unnest(j.license_arn, j.customer_kind, j.customer, j.dimension, j.hour)
                 WITH ORDINALITY AS e(l, k, c, d, h, i) ON e.i = t.i) x
        GROUP BY x.h, x.l, x.k, x.c, x.d, j.replica, x.g
        ORDER BY 2, 3, 4, 5, 6, 7, 8
        ON CONFLICT (product_code, hour, license_arn, customer_kind, customer, dimension,
                     replica, tags)
        DO UPDATE SET quantity = a.quantity + excluded.quantity
    )"#,
            $tail,
            r#"
END $$;
DO $$ BEGIN
    EXECUTE format('ALTER FUNCTION "#,
            $name,
            r#"(text, boolean) SET search_path = %I, pg_temp',
                   current_schema());
END $$;
"#
        )
    };
}

/// Moves every committed journal row of a product into the partial rows, in one
/// statement: the rows it deletes are the rows it adds, so a journal row is folded
/// exactly once whoever folds and whenever a folder dies. One folder at a time per product
/// (an advisory lock on a key no hour has); `p_wait` false returns 0 at once when another
/// holds it. It runs with its owner's rights (a runtime role may call it having been
/// granted nothing on the journal), on the schema it was made in.
const FOLD_FUNCTION: &str = fold_function!(
    "mm_fold_v1",
    "bigint",
    " 0",
    "",
    "",
    "
    SELECT count(*) INTO v_rows FROM j;
    RETURN v_rows;"
);

/// [`FOLD_FUNCTION`], returning the buckets it added into whose sum passed 2^30 and that
/// are not checked yet (see [`ADD_V3_FUNCTION`]): the sealer has [`MARK_FUNCTION`] mark
/// them, so however many sessions journal into a bucket, each below its own limit, every
/// write into it is checked from then on.
const FOLD_V2_FUNCTION: &str = fold_function!(
    "mm_fold_v2",
    "TABLE (o_hour bigint, o_license text, o_kind text, o_customer text, o_dimension text)",
    "",
    "
    v_h bigint[];
    v_l text[];
    v_k text[];
    v_c text[];
    v_d text[];",
    "
        RETURNING p.hour AS h, p.license_arn AS l, p.customer_kind AS k, p.customer AS c,
                  p.dimension AS d",
    concat!(
        "
    SELECT (SELECT count(*) FROM j), array_agg(h), array_agg(l), array_agg(k), array_agg(c),
           array_agg(d)
    INTO v_rows, v_h, v_l, v_k, v_c, v_d
    FROM (SELECT DISTINCT h, l, k, c, d FROM parts) x;
    RETURN QUERY
    SELECT t.h, t.l, t.k, t.c, t.d
    FROM unnest(v_h, v_l, v_k, v_c, v_d) AS t(h, l, k, c, d)
    WHERE ",
        past_2_30!(),
        "
      AND NOT EXISTS (SELECT 1 FROM mm_partials m WHERE ",
        same_bucket!("m", "t"),
        " AND m.replica = '');"
    )
);

/// Marks checked (see [`ADD_V3_FUNCTION`]) those of the given buckets whose sum passed
/// 2^30, as a write that marks does: under the product's exclusive write lock (no write in
/// flight), after folding the journal. Returns how many it marked, or -1 without waiting
/// when a seal or fold holds the fold's lock (the sealer runs it in a transaction of its
/// own, after its seal committed).
const MARK_FUNCTION: &str = concat!(
    r#"
CREATE FUNCTION mm_mark_v1(p_product text, p_hour bigint[], p_license text[], p_kind text[],
                           p_customer text[], p_dimension text[])
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_marked bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(p_product), -2000000001);
    IF NOT pg_try_advisory_xact_lock(hashtext(p_product), -2000000000) THEN
        RETURN -1;
    END IF;
    -- What the fold takes past 2^30 is marked too.
"#,
    fold_and_mark!(),
    r#"
    INSERT INTO mm_partials (product_code, hour, license_arn, customer_kind, customer,
                             dimension, replica, quantity)
    SELECT p_product, t.h, t.l, t.k, t.c, t.d, '', 0
    FROM unnest(p_hour, p_license, p_kind, p_customer, p_dimension) AS t(h, l, k, c, d)
    WHERE "#,
    past_2_30!(),
    r#"
    ORDER BY 2, 3, 4, 5, 6
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_marked = ROW_COUNT;
    RETURN v_marked;
END $$;
"#
);

/// Sealing an hour folds the journal first, whoever seals: a sealer of a release two back,
/// which knows nothing of the journal, inserts into `mm_sealed_hours` (holding the
/// hour's exclusive lock) before it sums the partial rows, in the same transaction.
const FOLD_TRIGGER: &str = r#"
CREATE FUNCTION mm_fold_on_seal_v1() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mm_fold_v1(NEW.product_code, true);
    RETURN NEW;
END $$;
CREATE TRIGGER mm_sealed_hours_fold_v1 BEFORE INSERT ON mm_sealed_hours
    FOR EACH ROW EXECUTE FUNCTION mm_fold_on_seal_v1();
"#;

/// The objects made when absent, in order, each with the probe that finds it (NULL when
/// absent): the earlier releases' write functions, the journal and its fold, and this
/// release's write function.
const ABSENT: &[(&str, &str)] = &[
    (
        "SELECT to_regprocedure('mm_add_v1(text, text, bigint, text, bigint, bigint[], int4[], \
         text[], text[], text[], text[], bigint[], bigint[], int4[], text[], bigint[])')::text",
        ADD_V1_FUNCTION,
    ),
    ("SELECT to_regclass('mm_journal')::text", JOURNAL_TABLE),
    (
        "SELECT to_regprocedure('mm_fold_v1(text, boolean)')::text",
        FOLD_FUNCTION,
    ),
    (
        "SELECT to_regprocedure('mm_fold_v2(text, boolean)')::text",
        FOLD_V2_FUNCTION,
    ),
    (
        "SELECT to_regprocedure('mm_mark_v1(text, bigint[], text[], text[], text[], text[])')::text",
        MARK_FUNCTION,
    ),
    (
        "SELECT (SELECT tgname::text FROM pg_trigger
                 WHERE tgrelid = 'mm_sealed_hours'::regclass AND tgname = 'mm_sealed_hours_fold_v1')",
        FOLD_TRIGGER,
    ),
    (
        "SELECT to_regprocedure('mm_add_v2(text, text, bigint, text, bigint, bigint[], int4[], \
         text[], text[], text[], text[], bigint[], bigint[], int4[], text[], bigint[], \
         boolean, bigint[])')::text",
        ADD_V2_FUNCTION,
    ),
    (
        "SELECT to_regprocedure('mm_add_v3(text, text, bigint, text, bigint, bigint[], int4[], \
         text[], text[], text[], text[], bigint[], bigint[], int4[], text[], bigint[], \
         boolean)')::text",
        ADD_V3_FUNCTION,
    ),
];

/// Why a store is not opened (see [`Fleet::migrate`]).
enum Refused {
    /// The schema is newer than this library's.
    Newer(i32),
    /// The role's search path misses the store, in these schemas.
    Elsewhere(String),
}

/// Runs `create` when `probe` (a `to_regclass` or `to_regprocedure` of the object) finds
/// nothing. Creating needs `CREATE` on the schema even with `IF NOT EXISTS`, which a runtime
/// role of the README's least-privilege set-up lacks: it opens a store another role made.
async fn create_absent(
    tx: &tokio_postgres::Transaction<'_>,
    probe: &str,
    create: &str,
) -> Result<(), tokio_postgres::Error> {
    let found: Option<String> = tx.query_one(probe, &[]).await?.get(0);
    if found.is_none() {
        tx.batch_execute(create).await?;
    }
    Ok(())
}

/// The schemas holding a store when this role's search path reaches none and would create
/// one in `public`: a runtime role set up without `ALTER ROLE … SET search_path` (the
/// default `"$user", public`) made a second store there (where `public` is open to
/// `CREATE`, as before PostgreSQL 15), and replicas split across the two each sent their own
/// sums of one customer-hour: the service billed the first and refused the second as a
/// duplicate. A role whose path leads to a schema of its own may start a store there.
const STORE_ELSEWHERE: &str = "SELECT string_agg(DISTINCT n.nspname, ', ' ORDER BY n.nspname)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relname = 'mm_schema' AND c.relkind = 'r' AND to_regclass('mm_schema') IS NULL
      AND current_schema() IS NOT DISTINCT FROM 'public'";

impl Fleet {
    pub(super) async fn migrate(&self) -> Result<(), Error> {
        retry_within(self, "migrate", LONG_ATTEMPT_FOR, |mut c| async move {
            let r = async {
                let tx = c.transaction().await?;
                tx.batch_execute("SELECT pg_advisory_xact_lock(hashtext('mm_schema'))")
                    .await?;
                // tokio-postgres sends text as UTF-8, which the server converts to the
                // database's encoding: one lacking a character the model allows ("€" in
                // LATIN1) refused every write carrying it (SQLSTATE 22P05). Every encoding
                // the server offers holds ASCII, which the meter then asks for.
                let encoding: String = tx
                    .query_one("SELECT current_setting('server_encoding')", &[])
                    .await?
                    .get(0);
                if !matches!(encoding.as_str(), "UTF8" | "SQL_ASCII") {
                    let _ = self.narrow_encoding.set(encoding);
                }
                let elsewhere: Option<String> = tx.query_one(STORE_ELSEWHERE, &[]).await?.get(0);
                if let Some(schemas) = elsewhere {
                    return Ok(Err(Refused::Elsewhere(schemas)));
                }
                create_absent(
                    &tx,
                    "SELECT to_regclass('mm_schema')::text",
                    "CREATE TABLE mm_schema (version integer NOT NULL)",
                )
                .await?;
                // What this transaction makes goes beside the store's own tables: a role
                // whose path puts a schema of its own first (`"$user", public` with the
                // store in `public`) made an upgrade's objects there, the fold pinned to
                // that schema, and every seal failed (found by a review).
                tx.batch_execute(
                    "SELECT set_config('search_path', quote_ident(n.nspname), true)
                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE c.oid = to_regclass('mm_schema')",
                )
                .await?;
                let v: Option<i32> = tx
                    .query_one("SELECT max(version) FROM mm_schema", &[])
                    .await?
                    .get(0);
                let v = v.unwrap_or(0);
                if v > SCHEMA_VERSION {
                    return Ok(Err(Refused::Newer(v)));
                }
                for (i, sql) in MIGRATIONS.iter().enumerate().skip(v as usize) {
                    tx.batch_execute(sql).await?;
                    tx.execute(
                        "INSERT INTO mm_schema (version) VALUES ($1)",
                        &[&(i as i32 + 1)],
                    )
                    .await?;
                }
                for (probe, create) in ABSENT {
                    create_absent(&tx, probe, create).await?;
                }
                let journal: bool = tx
                    .query_one(
                        "SELECT has_table_privilege('mm_journal', 'INSERT')
                            AND has_table_privilege('mm_journal', 'SELECT')",
                        &[],
                    )
                    .await?
                    .get(0);
                if !journal {
                    tracing::warn!(
                        "fleet store: this role may not write mm_journal; its writes add into \
                         partial rows, the slower way (grant it SELECT, INSERT on mm_journal)"
                    );
                }
                self.journal.store(journal, Ordering::Relaxed);
                tx.execute(
                    "INSERT INTO mm_meta (key, value) VALUES ('library_version', $1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[&crate::VERSION],
                )
                .await?;
                // The fleet's identity, made with its schema (see the SQLite store's
                // `migrate`): a database restored from a backup sends the same tokens.
                tx.execute(MAKE_STORE_ID, &[]).await?;
                // `mm_buckets.attempts` counts the sends whose answer was lost; earlier
                // releases counted every claim. Cleared once, as the SQLite store's are.
                let cleared = tx
                    .execute(
                        "INSERT INTO mm_meta (key, value) VALUES ('attempts', 'unanswered')
                         ON CONFLICT (key) DO NOTHING",
                        &[],
                    )
                    .await?;
                if cleared == 1 {
                    tx.execute(
                        "UPDATE mm_buckets SET attempts = 0
                         WHERE state IN ('sealed', 'sending', 'dead_lettered') AND attempts <> 0",
                        &[],
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(Ok(()))
            }
            .await;
            (c, r)
        })
        .await
        .and_then(|found| match found {
            Ok(()) => Ok(()),
            Err(Refused::Newer(v)) => Err(Error::invalid_state(format!(
                "fleet store: schema version {v} is newer than this library's {SCHEMA_VERSION}"
            ))),
            Err(Refused::Elsewhere(schemas)) => Err(Error::invalid_config(format!(
                "fleet store: this role's search_path does not reach the store, which is in \
                 schema {schemas} (or the role lacks USAGE on that schema), and a second store \
                 in schema public would split the fleet (each half sending its own sums of an \
                 hour): set the role's search_path (ALTER ROLE … SET search_path = {schemas}) \
                 or the connection string's options=-csearch_path={schemas}, and grant it \
                 USAGE on the schema"
            ))),
        })
    }
}

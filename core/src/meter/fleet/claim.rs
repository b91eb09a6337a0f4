// SPDX-License-Identifier: Apache-2.0
// Sending from the fleet store: sender slots, claims with a lease and a fencing counter, outcomes.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::meter::lock;
use crate::meter::store::{customer_from, Allocs, Outcome, SendItem};
use crate::Error;

use super::{pg_err, retry, retryable, Fleet, PgClient, Sender, ATTEMPT_FOR, RETRY_FOR};

/// The advisory locks of this product's sender slots (`$1` the product, `$2` the slots), as
/// `pg_locks` shows a two-key lock: the keys as unsigned 32-bit `oid`s, `objsubid` 2.
macro_rules! slot_locks {
    () => {
        "l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND l.classid = (hashtext('mm_sender:' || $1)::int8 & 4294967295)::oid
         AND l.objid::text::int8 < $2::int8"
    };
}

/// What a sender's slot connection is named while it holds the slot (its
/// `application_name`, which `pg_stat_activity` shows every role): it says the lease its
/// keep-alive speaks within, a third of it at a time.
fn sender_name(lease_ms: f64) -> String {
    format!("mm-sender lease_ms={}", lease_ms.ceil() as u64)
}

/// Ends the backends of this meter's login role holding a slot that have been idle longer
/// than a lease; returns how many. The lease is the longer of this meter's (`$3`,
/// milliseconds) and the one the holder says it keeps ([`sender_name`]): a replica set
/// with a longer lease speaks less often, and is alive all the same. A holder that says
/// none (a previous release's, a session not of this library) is judged by this meter's.
const END_FROZEN_SENDERS: &str = concat!(
    "SELECT count(*) FILTER (WHERE pg_terminate_backend(a.pid))
     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE ",
    slot_locks!(),
    " AND a.pid <> pg_backend_pid() AND a.usename = session_user
      AND a.state IN ('idle', 'idle in transaction', 'idle in transaction (aborted)')
      AND a.state_change < clock_timestamp() - GREATEST($3::float8, COALESCE(
            substring(a.application_name FROM '^mm-sender lease_ms=([0-9]{1,12})$')::float8,
            0)) * interval '1 millisecond'"
);

/// Says once per process that a database refused the look at, or the ending of, a frozen
/// sender's backend (rights revoked from PUBLIC): such a sender then holds its slot until it
/// resumes or its connection ends.
fn warn_no_takeover(e: &tokio_postgres::Error) {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            error = %e,
            "fleet store: cannot end a frozen sender's backend; its slot stays held"
        );
    }
}

/// How many of this product's slots are held.
const HELD_SLOTS: &str = concat!("SELECT count(*) FROM pg_locks l WHERE ", slot_locks!());

impl Fleet {
    /// Takes a sender slot for this product (a session advisory lock, released when the
    /// connection ends: a killed sender frees its slot); `None` when every slot is held by
    /// another meter.
    ///
    /// A replica frozen while it holds a slot (SIGSTOP, a paused container, a suspended VM)
    /// keeps its connection open, and the server its lock. A live sender's process speaks
    /// on its slot's connection every third of a lease, from a task of its own, unless an
    /// event callback of its flush has been running for longer than a lease (see
    /// [`Self::hold`]); a holder whose connection has been idle for longer than a lease is
    /// frozen, or stuck. Its backend is ended (when it logged in as this meter's role), and
    /// with it the slot. The frozen replica, once resumed, has its answers refused by the
    /// fencing counter and stops at its next claim ([`Self::keep_sender`]). A database that
    /// refuses the look or the ending (revoked rights) leaves the slot held, as before.
    pub(crate) async fn sender(&self, product: &str) -> Result<Option<Sender>, Error> {
        let senders = self.settings.senders as i32;
        let lease_ms = self.settings.lease.as_secs_f64() * 1000.0;
        let name = sender_name(lease_ms);
        let started = Instant::now();
        loop {
            let r = tokio::time::timeout(ATTEMPT_FOR, async {
                let c = self.get().await?;
                let mut freed = false;
                loop {
                    for slot in 0..senders {
                        // Named first, so no other replica sees the slot held by a
                        // connection that does not yet say its lease.
                        let got: bool = c
                            .query_one(
                                "SELECT set_config('application_name', $3, false) IS NOT NULL
                                        AND pg_try_advisory_lock(hashtext('mm_sender:' || $1), $2)",
                                &[&product, &slot, &name],
                            )
                            .await?
                            .get(0);
                        if got {
                            return Ok(Some(self.hold(c)));
                        }
                    }
                    if freed {
                        break;
                    }
                    let ended = c
                        .query_one(
                            END_FROZEN_SENDERS,
                            &[&product, &i64::from(senders), &lease_ms],
                        )
                        .await;
                    let ended: i64 = match ended {
                        Ok(row) => row.get(0),
                        // Refused by the server (rights revoked from PUBLIC): no take-over.
                        Err(e) if e.as_db_error().is_some() => {
                            warn_no_takeover(&e);
                            0
                        }
                        Err(e) => return Err(e),
                    };
                    if ended == 0 {
                        break;
                    }
                    // Ended, its backend releases the lock as it exits: shortly.
                    freed = true;
                    for _ in 0..40 {
                        let held: i64 = c
                            .query_one(HELD_SLOTS, &[&product, &i64::from(senders)])
                            .await?
                            .get(0);
                        if held < i64::from(senders) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(25)).await;
                    }
                }
                c.batch_execute("RESET application_name").await?;
                self.put(c);
                Ok(None)
            })
            .await;
            match r {
                Ok(Ok(s)) => return Ok(s),
                Ok(Err(e)) if !retryable(&e) || started.elapsed() >= RETRY_FOR => {
                    return Err(pg_err(e))
                }
                Err(_) if started.elapsed() >= RETRY_FOR => {
                    return Err(Error::invalid_state(format!(
                        "fleet store: no answer within {ATTEMPT_FOR:?} (sender slot)"
                    )))
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Speaks on the slot's connection, so that its holder is seen alive (see
    /// [`Self::sender`]); false when the slot is lost: its connection was ended (another
    /// replica found it idle past the lease while this one was frozen) or does not answer.
    pub(crate) async fn keep_sender(&self, s: &Sender) -> bool {
        let ping = s.conn.simple_query("SELECT 1");
        matches!(tokio::time::timeout(ATTEMPT_FOR, ping).await, Ok(Ok(_)))
    }

    /// Marks an event callback of this meter's flush as running (`true`) or returned
    /// (`false`), which [`Self::hold`]'s keep-alive watches (one flush at a time runs).
    pub(crate) fn in_callback(&self, running: bool) {
        *lock(&self.callback_since) = running.then(Instant::now);
    }

    /// The slot held on `c`, and its keep-alive task started. It stays silent while an
    /// event callback of the flush has been running for longer than a lease: a flush
    /// stuck in one (an `on_event` callback that never returns) sends nothing, and a slot
    /// kept alive for it would stop the whole fleet's sending until the window ran out.
    /// Left silent, the slot is taken over as a frozen one's is; the stuck flush, if it
    /// ever goes on, has its answers refused by the fencing counter and stops at its next
    /// claim. (Every other step of a flush is bounded by its own timeouts.)
    fn hold(&self, c: PgClient) -> Sender {
        let conn = Arc::new(c);
        let lease = self.settings.lease;
        let every = (lease / 3).max(Duration::from_millis(10));
        let weak = Arc::downgrade(&conn);
        let callback_since = Arc::clone(&self.callback_since);
        let keepalive = crate::runtime::spawn(async move {
            let mut said = false;
            loop {
                tokio::time::sleep(every).await;
                let Some(c) = weak.upgrade() else { return };
                let stuck = lock(&callback_since).is_some_and(|t| t.elapsed() > lease);
                if stuck {
                    if !std::mem::replace(&mut said, true) {
                        tracing::error!(
                            lease = ?lease,
                            "fleet store: an on_event callback has run for longer than \
                             a lease; this replica's sender slot is left to be taken over \
                             by another replica"
                        );
                    }
                    continue;
                }
                // A slow or failed ping is tried again next time: the flush's own ping
                // before its next claim tells whether the slot is still held.
                let _ = tokio::time::timeout(ATTEMPT_FOR, c.simple_query("SELECT 1")).await;
            }
        })
        .ok();
        Sender { conn, keepalive }
    }

    /// Gives up the sender slot.
    pub(crate) async fn release_sender(&self, s: Sender) {
        let Sender { conn, keepalive } = s;
        if let Some(k) = keepalive {
            k.abort();
            let _ = k.await;
        }
        // A connection that does not answer is dropped, and its slot with it.
        let unlock = conn.batch_execute("SELECT pg_advisory_unlock_all(); RESET application_name");
        if let Ok(Ok(())) = tokio::time::timeout(ATTEMPT_FOR, unlock).await {
            if let Ok(c) = Arc::try_unwrap(conn) {
                self.put(c);
            }
        }
    }

    /// Claims up to `limit` sendable buckets (sealed, or sending with an expired lease)
    /// other than `exclude` and those of `licenses`: they go to `sending` with a new fencing
    /// counter and a lease. Hours from `window_start` on (those the meter's clock places in
    /// the service's window) first, oldest first.
    pub(crate) async fn claim(
        &self,
        product: &str,
        limit: i64,
        exclude: &[i64],
        licenses: &[String],
        window_start: i64,
    ) -> Result<Vec<SendItem>, Error> {
        let lease_ms = self.settings.lease.as_secs_f64() * 1000.0;
        let rows = retry(self, "claim", |c| async move {
            let r = c
                .query(
                    "UPDATE mm_buckets b SET state = 'sending', claim = nextval('mm_claims'),
                            claimed_by = $3, lease_until = now() + $4::float8 * interval '1 millisecond',
                            attempts = attempts + CASE WHEN state = 'sending' THEN 1 ELSE 0 END
                     WHERE b.id IN (SELECT id FROM mm_buckets
                                    WHERE product_code = $1
                                      AND (state = 'sealed'
                                           OR (state = 'sending' AND (lease_until < now() OR claimed_by = $3)))
                                      AND id <> ALL($5) AND license_arn <> ALL($6)
                                    ORDER BY hour <= $7, CASE WHEN $1 = '' THEN license_arn END, hour, license_arn, id LIMIT $2
                                    FOR UPDATE SKIP LOCKED)
                     RETURNING id, claim, license_arn, customer_kind, customer, dimension, hour, quantity,
                               allocations, attempts > 0",
                    &[&product, &limit, &self.claimer(), &lease_ms, &exclude, &licenses, &window_start],
                )
                .await;
            (c, r)
        })
        .await?;
        let mut claims = lock(&self.claims);
        let mut items: Vec<SendItem> = rows
            .iter()
            .map(|r| {
                claims.insert(r.get(0), r.get(1));
                SendItem {
                    id: r.get(0),
                    product: product.to_owned(),
                    customer: customer_from(r.get(3), r.get(4), r.get(2)),
                    dimension: r.get(5),
                    hour: r.get(6),
                    quantity: r.get(7),
                    allocations: r
                        .get::<_, Option<String>>(8)
                        .and_then(|s| serde_json::from_str::<Allocs>(&s).ok()),
                    token_nonce: None,
                    // Left `sending` by an earlier claim (an answer lost, a sender gone):
                    // counted in `attempts`, which a send certainly not processed (reverted
                    // to `sealed`) never is.
                    unanswered: r.get(9),
                }
            })
            .collect();
        items.sort_by_key(|a| (a.hour, a.id));
        Ok(items)
    }

    /// How many buckets wait to be sent, other than `exclude` and those of `licenses`.
    pub(crate) async fn count_sendable(
        &self,
        product: &str,
        exclude: &[i64],
        licenses: &[String],
    ) -> Result<usize, Error> {
        let n: i64 = retry(self, "count", |c| async move {
            let r = c
                .query_one(
                    "SELECT count(*)::int8 FROM mm_buckets WHERE product_code = $1
                     AND state IN ('sealed', 'sending') AND id <> ALL($2)
                     AND license_arn <> ALL($3)",
                    &[&product, &exclude, &licenses],
                )
                .await
                .map(|r| r.get(0));
            (c, r)
        })
        .await?;
        Ok(n.max(0) as usize)
    }

    /// Applies outcomes whose bucket still carries this meter's fencing counter, and returns
    /// the buckets they applied to: an answer that came back after this meter's lease ran out
    /// (another replica claimed the bucket again) changes nothing and is not reported.
    pub(crate) async fn record_outcomes(
        &self,
        outcomes: &[Outcome],
        now: i64,
    ) -> Result<HashSet<i64>, Error> {
        if outcomes.is_empty() {
            return Ok(HashSet::new());
        }
        // Hours acked or expired close those before them (see `write.rs`): read again.
        *lock(&self.closed_through) = None;
        let fence = |id: &i64| lock(&self.claims).get(id).copied().unwrap_or(-1);
        let (mut ack_id, mut ack_claim, mut ack_rec) = (Vec::new(), Vec::new(), Vec::new());
        let (mut dead_id, mut dead_claim, mut dead_reason, mut dead_msg) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut exp_id, mut exp_claim) = (Vec::new(), Vec::new());
        let (mut rev_id, mut rev_claim) = (Vec::new(), Vec::new());
        // Each final outcome's bucket, claim and state, to recognise it as applied when an
        // earlier attempt committed and lost its answer.
        let (mut fin_id, mut fin_claim, mut fin_state) = (Vec::new(), Vec::new(), Vec::new());
        for o in outcomes {
            let settled = match o {
                Outcome::Ack(id, _) => Some((id, "acked")),
                Outcome::Dead(id, ..) => Some((id, "dead_lettered")),
                Outcome::Expire(id) => Some((id, "expired")),
                Outcome::Revert(_) => None,
            };
            if let Some((id, state)) = settled {
                fin_id.push(*id);
                fin_claim.push(fence(id));
                fin_state.push(state);
            }
            match o {
                Outcome::Ack(id, r) => {
                    ack_id.push(*id);
                    ack_claim.push(fence(id));
                    ack_rec.push(self.holdable(r));
                }
                Outcome::Dead(id, reason, msg) => {
                    dead_id.push(*id);
                    dead_claim.push(fence(id));
                    dead_reason.push(self.holdable(reason));
                    dead_msg.push(self.holdable(msg));
                }
                Outcome::Expire(id) => {
                    exp_id.push(*id);
                    exp_claim.push(fence(id));
                }
                Outcome::Revert(id) => {
                    rev_id.push(*id);
                    rev_claim.push(fence(id));
                }
            }
        }
        let (a, b, d, e, f) = (&ack_id, &ack_claim, &ack_rec, &dead_id, &dead_claim);
        let (g, h, i, j, k, l, m) = (
            &dead_reason,
            &dead_msg,
            &exp_id,
            &exp_claim,
            &rev_id,
            &rev_claim,
            &now,
        );
        let (fi, fc, fs) = (&fin_id, &fin_claim, &fin_state);
        let tried = AtomicBool::new(false);
        let tried = &tried;
        let applied = retry(self, "record outcomes", |mut c| async move {
            let again = tried.swap(true, Ordering::Relaxed);
            let r = async {
                let tx = c.transaction().await?;
                let mut applied = HashSet::new();
                if !a.is_empty() {
                    let rows = tx
                        .query(
                            "UPDATE mm_buckets b SET state = 'acked', metering_record_id = t.r, lease_until = NULL
                             FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS t(id, claim, r)
                             WHERE b.id = t.id AND b.claim = t.claim AND b.state = 'sending'
                             RETURNING b.id",
                            &[a, b, d],
                        )
                        .await?;
                    applied.extend(rows.iter().map(|r| r.get::<_, i64>(0)));
                }
                if !e.is_empty() {
                    let rows = tx.query(
                        "WITH u AS (
                             UPDATE mm_buckets b SET state = 'dead_lettered', lease_until = NULL
                             FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[])
                                  AS t(id, claim, reason, message)
                             WHERE b.id = t.id AND b.claim = t.claim AND b.state = 'sending'
                             RETURNING b.*, t.reason, t.message)
                         INSERT INTO mm_dead_letters (bucket_id, product_code, license_arn, customer_kind,
                                                      customer, dimension, hour, quantity, reason, message, at)
                         SELECT id, product_code, license_arn, customer_kind, customer, dimension, hour,
                                quantity, reason, message, $5 FROM u
                         RETURNING bucket_id",
                        &[e, f, g, h, m],
                    )
                    .await?;
                    applied.extend(rows.iter().map(|r| r.get::<_, i64>(0)));
                }
                for (state, ids, claims) in [("expired", i, j), ("sealed", k, l)] {
                    if ids.is_empty() {
                        continue;
                    }
                    let rows = tx
                        .query(
                            "UPDATE mm_buckets b SET state = $3, lease_until = NULL
                             FROM unnest($1::bigint[], $2::bigint[]) AS t(id, claim)
                             WHERE b.id = t.id AND b.claim = t.claim AND b.state = 'sending'
                             RETURNING b.id",
                            &[ids, claims, &state],
                        )
                        .await?;
                    applied.extend(rows.iter().map(|r| r.get::<_, i64>(0)));
                }
                if again && !fi.is_empty() {
                    // An earlier attempt may have committed before its answer was lost: a
                    // bucket already in its final state under this meter's claim (the claim
                    // counter is never reused) was settled by it, and is reported once. After
                    // the updates, which waited for that attempt's row locks if it was still
                    // committing, so this statement sees what it committed.
                    let rows = tx
                        .query(
                            "SELECT b.id FROM mm_buckets b
                             JOIN unnest($1::bigint[], $2::bigint[], $3::text[]) AS t(id, claim, state)
                               ON b.id = t.id AND b.claim = t.claim AND b.state = t.state",
                            &[fi, fc, fs],
                        )
                        .await?;
                    applied.extend(rows.iter().map(|r| r.get::<_, i64>(0)));
                }
                crate::meter::crash::hit("mid_ack_txn");
                tx.commit().await.map(|()| applied)
            }
            .await;
            (c, r)
        })
        .await?;
        crate::meter::crash::hit("after_ack");
        let mut claims = lock(&self.claims);
        for o in outcomes {
            let id = match o {
                Outcome::Ack(id, _) | Outcome::Dead(id, ..) | Outcome::Expire(id) => id,
                Outcome::Revert(id) => id,
            };
            claims.remove(id);
        }
        Ok(applied)
    }
}

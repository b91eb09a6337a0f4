// SPDX-License-Identifier: Apache-2.0
// The four operations: semantic checks, de-duplication, idempotency, billing and persistence.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Number;

use crate::config::{Catalog, EmulatorConfig};
use crate::error::ApiError;
use crate::model::{self, UsageAllocation, UsageRecord};
use crate::sigv4::hmac_sha256;
use crate::types::LedgerEntry;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// Locks a mutex, ignoring poisoning (a panicked holder leaves consistent data here).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A random (v4) UUID from a fast non-cryptographic generator.
pub(crate) fn new_id() -> String {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
        .into_uuid()
        .to_string()
}

const JOURNAL_FILE: &str = "journal.jsonl";

#[derive(Clone, Debug)]
struct Dedup {
    quantity: i64,
    id: String,
}

#[derive(Clone, Debug)]
struct Token {
    fingerprint: String,
    id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct DedupRow {
    table: String,
    key: String,
    quantity: i64,
    id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct TokenRow {
    key: String,
    fingerprint: String,
    id: String,
}

/// One line of the journal: everything one request changed.
#[derive(Debug, Default, Serialize, Deserialize)]
struct JournalLine {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ledger: Vec<LedgerEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dedup: Vec<DedupRow>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tokens: Vec<TokenRow>,
    /// Records refused as duplicates with another quantity (not billed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    rejected: Vec<LedgerEntry>,
}

impl JournalLine {
    fn is_empty(&self) -> bool {
        self.ledger.is_empty()
            && self.dedup.is_empty()
            && self.tokens.is_empty()
            && self.rejected.is_empty()
    }
}

/// Mutable state: the ledger and the tables that make requests idempotent.
#[derive(Default)]
struct State {
    ledger: Vec<LedgerEntry>,
    rejected: Vec<LedgerEntry>,
    batch_dedup: HashMap<String, Dedup>,
    meter_dedup: HashMap<String, Dedup>,
    tokens: HashMap<String, Token>,
    journal: Option<File>,
}

impl State {
    fn apply(&mut self, line: JournalLine) {
        for row in line.dedup {
            let table = if row.table == "meter" {
                &mut self.meter_dedup
            } else {
                &mut self.batch_dedup
            };
            table.insert(
                row.key,
                Dedup {
                    quantity: row.quantity,
                    id: row.id,
                },
            );
        }
        for row in line.tokens {
            self.tokens.insert(
                row.key,
                Token {
                    fingerprint: row.fingerprint,
                    id: row.id,
                },
            );
        }
        self.ledger.extend(line.ledger);
        self.rejected.extend(line.rejected);
    }

    /// Writes the change durably (when a state directory is configured), then applies it.
    fn commit(&mut self, line: JournalLine) -> Result<(), ApiError> {
        if line.is_empty() {
            return Ok(());
        }
        if let Some(file) = &mut self.journal {
            let mut bytes = serde_json::to_vec(&line).map_err(|e| internal(e.to_string()))?;
            bytes.push(b'\n');
            file.write_all(&bytes)
                .and_then(|_| file.sync_data())
                .map_err(|e| internal(format!("could not persist state: {e}")))?;
        }
        self.apply(line);
        Ok(())
    }

    /// Loads a journal, dropping a torn last line, and opens it for appending.
    fn load(dir: &Path) -> io::Result<State> {
        std::fs::create_dir_all(dir)?;
        let path: PathBuf = dir.join(JOURNAL_FILE);
        let mut state = State::default();
        let mut good_len = 0u64;
        let mut total_len = 0u64;
        if path.exists() {
            let mut text = Vec::new();
            File::open(&path)?.read_to_end(&mut text)?;
            total_len = text.len() as u64;
            let mut offset = 0usize;
            while let Some(nl) = text[offset..].iter().position(|&b| b == b'\n') {
                let line = &text[offset..offset + nl];
                match serde_json::from_slice::<JournalLine>(line) {
                    Ok(l) => state.apply(l),
                    Err(_) => break,
                }
                offset += nl + 1;
                good_len = offset as u64;
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if good_len != total_len {
            file.set_len(good_len)?;
        }
        file.sync_all()?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        state.journal = Some(file);
        Ok(state)
    }
}

fn internal(msg: impl Into<String>) -> ApiError {
    ApiError::new(500, "InternalServiceErrorException", msg)
}

/// The service: configuration snapshot plus mutable state.
pub(crate) struct Service {
    catalog: RwLock<Arc<Catalog>>,
    state: Mutex<State>,
}

#[derive(Serialize)]
struct ResultItem<'a> {
    #[serde(rename = "UsageRecord")]
    usage_record: &'a UsageRecord,
    #[serde(rename = "MeteringRecordId", skip_serializing_if = "Option::is_none")]
    metering_record_id: Option<String>,
    #[serde(rename = "Status")]
    status: &'static str,
}

#[derive(Serialize)]
struct BatchOutput<'a> {
    #[serde(rename = "Results")]
    results: Vec<ResultItem<'a>>,
    #[serde(rename = "UnprocessedRecords")]
    unprocessed: Vec<&'a UsageRecord>,
}

/// What one usage record resolves to before billing.
struct Prepared {
    key: String,
    product_code: String,
    subscribed: bool,
    hour: i64,
    timestamp: f64,
    quantity: i64,
}

fn hour_of(ts: f64) -> i64 {
    (ts / 3600.0).floor() as i64 * 3600
}

fn check_window(cfg: &EmulatorConfig, ts: f64, now: f64) -> Result<(), ApiError> {
    if !ts.is_finite()
        || now - ts >= cfg.max_past_secs as f64
        || ts - now > cfg.max_future_secs as f64
    {
        return Err(ApiError::client(
            "TimestampOutOfBoundsException",
            format!(
                "The timestamp value {ts} is out of the allowed range: it must be less than {} seconds in the past and at most {} seconds in the future (now {now:.0}).",
                cfg.max_past_secs, cfg.max_future_secs
            ),
        ));
    }
    Ok(())
}

/// Sum and tag rules for `UsageAllocations`.
fn check_allocations(allocs: &Option<Vec<UsageAllocation>>, quantity: i64) -> Result<(), ApiError> {
    let Some(allocs) = allocs else { return Ok(()) };
    let sum: i64 = allocs
        .iter()
        .map(|a| a.allocated_usage_quantity.unwrap_or(0))
        .sum();
    if sum != quantity {
        return Err(ApiError::client(
            "InvalidUsageAllocationsException",
            format!("The sum of AllocatedUsageQuantity ({sum}) does not equal the usage quantity ({quantity})."),
        ));
    }
    let mut seen_sets: HashSet<Vec<(String, String)>> = HashSet::default();
    for a in allocs {
        let mut set: Vec<(String, String)> = Vec::new();
        let mut keys = HashSet::default();
        for t in a.tags.iter().flatten() {
            let key = t.key.clone().unwrap_or_default();
            if key.to_ascii_lowercase().starts_with("aws:") {
                return Err(ApiError::client(
                    "InvalidTagException",
                    format!("Tag key '{key}' uses the reserved prefix 'aws:'."),
                ));
            }
            if !keys.insert(key.clone()) {
                return Err(ApiError::client(
                    "InvalidTagException",
                    format!("Tag key '{key}' appears more than once in one allocation."),
                ));
            }
            set.push((key, t.value.clone().unwrap_or_default()));
        }
        set.sort();
        if !seen_sets.insert(set) {
            return Err(ApiError::client(
                "InvalidUsageAllocationsException",
                "Each UsageAllocation must have a unique set of tags.",
            ));
        }
    }
    Ok(())
}

fn allocations_value(a: &Option<Vec<UsageAllocation>>) -> serde_json::Value {
    match a {
        Some(a) => serde_json::to_value(a).unwrap_or(serde_json::Value::Null),
        None => serde_json::Value::Null,
    }
}

fn to_body<T: Serialize>(v: &T) -> Result<Vec<u8>, ApiError> {
    to_body_sized(v, 256)
}

fn to_body_sized<T: Serialize>(v: &T, capacity: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut out, v).map_err(|e| internal(e.to_string()))?;
    Ok(out)
}

const SEP: char = '\u{1f}';

impl Service {
    pub fn new(config: EmulatorConfig) -> io::Result<Service> {
        let state = match &config.state_dir {
            Some(dir) => State::load(dir)?,
            None => State::default(),
        };
        Ok(Service {
            catalog: RwLock::new(Arc::new(Catalog::new(config))),
            state: Mutex::new(state),
        })
    }

    /// The current configuration snapshot.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the configuration (the port and state directory are kept).
    pub fn set_config(&self, mut config: EmulatorConfig) {
        let mut guard = self.catalog.write().unwrap_or_else(|p| p.into_inner());
        config.port = guard.config.port;
        config.state_dir = guard.config.state_dir.clone();
        *guard = Arc::new(Catalog::new(config));
    }

    pub fn ledger(&self) -> Vec<LedgerEntry> {
        lock(&self.state).ledger.clone()
    }

    pub fn rejected_duplicates(&self) -> Vec<LedgerEntry> {
        lock(&self.state).rejected.clone()
    }

    /// Clears the ledger and the de-duplication and idempotency tables (and the journal).
    pub fn reset(&self) -> io::Result<()> {
        let mut st = lock(&self.state);
        let journal = st.journal.take();
        *st = State::default();
        if let Some(file) = journal {
            file.set_len(0)?;
            file.sync_all()?;
            st.journal = Some(file);
        }
        Ok(())
    }

    pub fn batch_meter_usage(
        &self,
        cat: &Catalog,
        body: &[u8],
        partial: usize,
        now: f64,
    ) -> Result<Vec<u8>, ApiError> {
        let input: model::BatchMeterUsageInput = model::parse(body)?;
        model::validate_batch(&input)?;
        let records = input.usage_records.unwrap_or_default();
        let product_code = input.product_code.as_deref();
        if product_code.is_none() && records.iter().any(|r| r.license_arn.is_none()) {
            return Err(ApiError::validation(
                "1 validation error detected: Value null at 'productCode' failed to satisfy constraint: Member must not be null unless every usage record has a LicenseArn",
            ));
        }
        if let Some(pc) = product_code {
            if !cat.products.contains_key(pc) {
                return Err(invalid_product(pc));
            }
        } else {
            // "Each BatchMeterUsage request is for only one product": licenses of two.
            let mut products = records
                .iter()
                .filter_map(|r| r.license_arn.as_deref())
                .filter_map(|arn| cat.licenses.get(arn))
                .map(|l| l.product_code.as_str());
            if let Some(first) = products.next() {
                if let Some(other) = products.find(|p| *p != first) {
                    return Err(ApiError::validation(format!(
                        "1 validation error detected: the usage records' licenses are for \
                         products '{first}' and '{other}': each BatchMeterUsage request is for \
                         only one product"
                    )));
                }
            }
        }
        // One record out of the window rejects the whole batch.
        for r in &records {
            let ts = r
                .timestamp
                .as_ref()
                .map(model::timestamp_secs)
                .unwrap_or(f64::NAN);
            check_window(&cat.config, ts, now)?;
        }
        let mut prepared = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            prepared.push(prepare_record(cat, product_code, r, i + 1)?);
        }

        let cut = records.len().saturating_sub(partial);
        let mut results = Vec::with_capacity(cut);
        let mut journal = JournalLine::default();
        {
            let mut st = lock(&self.state);
            let mut pending: HashMap<&str, Dedup> = HashMap::default();
            for (r, p) in records.iter().zip(&prepared).take(cut) {
                if !p.subscribed {
                    results.push(ResultItem {
                        usage_record: r,
                        metering_record_id: None,
                        status: "CustomerNotSubscribed",
                    });
                    continue;
                }
                let existing = st
                    .batch_dedup
                    .get(&p.key)
                    .or_else(|| pending.get(p.key.as_str()));
                if let Some(d) = existing {
                    let status = if d.quantity == p.quantity {
                        "Success"
                    } else {
                        journal.rejected.push(LedgerEntry {
                            operation: "BatchMeterUsage".into(),
                            product_code: Some(p.product_code.clone()),
                            customer_identifier: r.customer_identifier.clone(),
                            customer_aws_account_id: r.customer_aws_account_id.clone(),
                            license_arn: r.license_arn.clone(),
                            dimension: r.dimension.clone().unwrap_or_default(),
                            hour: p.hour,
                            timestamp: p.timestamp,
                            quantity: p.quantity,
                            allocations: allocations_value(&r.usage_allocations),
                            metering_record_id: d.id.clone(),
                        });
                        "DuplicateRecord"
                    };
                    results.push(ResultItem {
                        usage_record: r,
                        metering_record_id: Some(d.id.clone()),
                        status,
                    });
                    continue;
                }
                let id = new_id();
                pending.insert(
                    &p.key,
                    Dedup {
                        quantity: p.quantity,
                        id: id.clone(),
                    },
                );
                journal.dedup.push(DedupRow {
                    table: "batch".into(),
                    key: p.key.clone(),
                    quantity: p.quantity,
                    id: id.clone(),
                });
                journal.ledger.push(LedgerEntry {
                    operation: "BatchMeterUsage".into(),
                    product_code: Some(p.product_code.clone()),
                    customer_identifier: r.customer_identifier.clone(),
                    customer_aws_account_id: r.customer_aws_account_id.clone(),
                    license_arn: r.license_arn.clone(),
                    dimension: r.dimension.clone().unwrap_or_default(),
                    hour: p.hour,
                    timestamp: p.timestamp,
                    quantity: p.quantity,
                    allocations: allocations_value(&r.usage_allocations),
                    metering_record_id: id.clone(),
                });
                results.push(ResultItem {
                    usage_record: r,
                    metering_record_id: Some(id),
                    status: "Success",
                });
            }
            st.commit(journal)?;
        }
        // Results echo the records and add ids: about twice the request.
        to_body_sized(
            &BatchOutput {
                results,
                unprocessed: records.iter().skip(cut).collect(),
            },
            body.len() * 2 + 256,
        )
    }

    pub fn meter_usage(
        &self,
        cat: &Catalog,
        access_key_id: &str,
        body: &[u8],
        now: f64,
    ) -> Result<Vec<u8>, ApiError> {
        let input: model::MeterUsageInput = model::parse(body)?;
        model::validate_meter(&input)?;
        let pc = input.product_code.as_deref().unwrap_or_default();
        let dim = input.usage_dimension.as_deref().unwrap_or_default();
        let Some(product) = cat.products.get(pc) else {
            return Err(invalid_product(pc));
        };
        if !product.entitled {
            return Err(ApiError::client(
                "CustomerNotEntitledException",
                format!("The customer is not entitled to product {pc}."),
            ));
        }
        if !product.dimensions.contains(dim) {
            return Err(invalid_dimension(dim, pc));
        }
        let ts = input
            .timestamp
            .as_ref()
            .map(model::timestamp_secs)
            .unwrap_or(f64::NAN);
        check_window(&cat.config, ts, now)?;
        let quantity = input.usage_quantity.unwrap_or(0);
        check_allocations(&input.usage_allocations, quantity)?;
        let dry_run = input.dry_run.unwrap_or(false);

        #[derive(Serialize)]
        struct Fingerprint<'a> {
            p: &'a str,
            t: &'a Option<Number>,
            d: &'a str,
            q: Option<i64>,
            a: &'a Option<Vec<UsageAllocation>>,
        }
        let fingerprint = serde_json::to_string(&Fingerprint {
            p: pc,
            t: &input.timestamp,
            d: dim,
            q: input.usage_quantity,
            a: &input.usage_allocations,
        })
        .map_err(|e| internal(e.to_string()))?;
        let hour = hour_of(ts);
        let identity = cat.credentials.get(access_key_id);
        // One quantity an hour per instance, whatever key of it signs.
        let instance = identity
            .and_then(|c| c.instance.as_deref())
            .unwrap_or(access_key_id);
        let key = format!("{instance}{SEP}{pc}{SEP}{dim}{SEP}{hour}");
        // Tokens are idempotent per seller account, not per identity.
        let account = identity
            .and_then(|c| c.account_id.as_deref())
            .unwrap_or(crate::config::SELLER_ACCOUNT_ID);
        let token_key = input
            .client_token
            .as_ref()
            .map(|t| format!("{account}{SEP}{t}"));
        let dry_run_error = || {
            ApiError::client(
                "DryRunOperation",
                "Request would have succeeded, but DryRun flag is set.",
            )
        };

        let mut st = lock(&self.state);
        if let Some(tk) = &token_key {
            if let Some(t) = st.tokens.get(tk) {
                if t.fingerprint != fingerprint {
                    let rejected = LedgerEntry {
                        operation: "MeterUsage".into(),
                        product_code: Some(pc.to_string()),
                        customer_identifier: None,
                        customer_aws_account_id: None,
                        license_arn: None,
                        dimension: dim.to_string(),
                        hour,
                        timestamp: ts,
                        quantity,
                        allocations: allocations_value(&input.usage_allocations),
                        metering_record_id: t.id.clone(),
                    };
                    // A DryRun makes no request: nothing is recorded.
                    if !dry_run {
                        st.commit(JournalLine {
                            rejected: vec![rejected],
                            ..JournalLine::default()
                        })?;
                    }
                    return Err(ApiError::client(
                        "IdempotencyConflictException",
                        "The ClientToken was already used with different request parameters.",
                    ));
                }
                if dry_run {
                    return Err(dry_run_error());
                }
                return to_body(&serde_json::json!({ "MeteringRecordId": t.id }));
            }
        }
        let mut journal = JournalLine::default();
        let id = match st.meter_dedup.get(&key).cloned() {
            Some(d) if d.quantity != quantity => {
                let rejected = LedgerEntry {
                    operation: "MeterUsage".into(),
                    product_code: Some(pc.to_string()),
                    customer_identifier: None,
                    customer_aws_account_id: None,
                    license_arn: None,
                    dimension: dim.to_string(),
                    hour,
                    timestamp: ts,
                    quantity,
                    allocations: allocations_value(&input.usage_allocations),
                    metering_record_id: d.id.clone(),
                };
                let quantity_billed = d.quantity;
                if !dry_run {
                    st.commit(JournalLine {
                        rejected: vec![rejected],
                        ..JournalLine::default()
                    })?;
                }
                return Err(ApiError::client(
                    "DuplicateRequestException",
                    format!(
                        "Usage for dimension {dim} of product {pc} in this hour was already recorded with a different quantity ({quantity_billed}).",
                    ),
                ));
            }
            Some(d) => {
                if dry_run {
                    return Err(dry_run_error());
                }
                d.id.clone()
            }
            None => {
                if dry_run {
                    return Err(dry_run_error());
                }
                let id = new_id();
                journal.dedup.push(DedupRow {
                    table: "meter".into(),
                    key,
                    quantity,
                    id: id.clone(),
                });
                journal.ledger.push(LedgerEntry {
                    operation: "MeterUsage".into(),
                    product_code: Some(pc.to_string()),
                    customer_identifier: None,
                    customer_aws_account_id: None,
                    license_arn: None,
                    dimension: dim.to_string(),
                    hour,
                    timestamp: ts,
                    quantity,
                    allocations: allocations_value(&input.usage_allocations),
                    metering_record_id: id.clone(),
                });
                id
            }
        };
        if let Some(tk) = token_key {
            journal.tokens.push(TokenRow {
                key: tk,
                fingerprint,
                id: id.clone(),
            });
        }
        st.commit(journal)?;
        drop(st);
        to_body(&serde_json::json!({ "MeteringRecordId": id }))
    }

    pub fn resolve_customer(&self, cat: &Catalog, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        let input: model::ResolveCustomerInput = model::parse(body)?;
        model::validate_resolve(&input)?;
        let token = input.registration_token.as_deref().unwrap_or_default();
        let Some(t) = cat.tokens.get(token) else {
            return Err(ApiError::client(
                "InvalidTokenException",
                "Registration token is invalid.",
            ));
        };
        if t.expired {
            return Err(ApiError::client(
                "ExpiredTokenException",
                "Registration token has expired.",
            ));
        }
        let mut out = serde_json::Map::new();
        if let Some(c) = &t.customer_identifier {
            out.insert("CustomerIdentifier".into(), c.clone().into());
        }
        if let Some(p) = &t.product_code {
            out.insert("ProductCode".into(), p.clone().into());
        }
        if let Some(a) = &t.customer_aws_account_id {
            out.insert("CustomerAWSAccountId".into(), a.clone().into());
        }
        if let Some(l) = &t.license_arn {
            out.insert("LicenseArn".into(), l.clone().into());
        }
        to_body(&out)
    }

    pub fn register_usage(
        &self,
        cat: &Catalog,
        body: &[u8],
        now: f64,
    ) -> Result<Vec<u8>, ApiError> {
        let input: model::RegisterUsageInput = model::parse(body)?;
        model::validate_register(&input)?;
        let version = input.public_key_version.unwrap_or(0);
        if version < 1 || version > cat.config.current_public_key_version {
            return Err(ApiError::client(
                "InvalidPublicKeyVersionException",
                format!("Public key version {version} is invalid."),
            ));
        }
        let pc = input.product_code.as_deref().unwrap_or_default();
        let Some(product) = cat.products.get(pc) else {
            return Err(invalid_product(pc));
        };
        if !product.entitled {
            return Err(ApiError::client(
                "CustomerNotEntitledException",
                format!("The customer is not entitled to product {pc}."),
            ));
        }
        // The model: "Only included when public key version has expired".
        let rotation = (version < cat.config.current_public_key_version)
            .then_some(cat.config.public_key_rotation_timestamp);
        let header = serde_json::json!({ "alg": "HS256", "typ": "JWT", "kid": format!("emulator-{version}") });
        let mut payload = serde_json::json!({
            "productCode": pc,
            "publicKeyVersion": version,
            "publicKeyRotationTimestamp": rotation,
            "issuedAt": now.floor() as i64,
            "iss": "metering-emulator",
        });
        if let Some(n) = &input.nonce {
            payload["nonce"] = n.clone().into();
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let sig = hmac_sha256(
            cat.config.register_usage_signing_key.as_bytes(),
            signing_input.as_bytes(),
        );
        let jwt = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig));
        let mut out = serde_json::json!({ "Signature": jwt });
        if let Some(r) = rotation {
            out["PublicKeyRotationTimestamp"] = r.into();
        }
        to_body(&out)
    }
}

fn invalid_product(pc: &str) -> ApiError {
    ApiError::client(
        "InvalidProductCodeException",
        format!("The product code '{pc}' is invalid."),
    )
}

fn invalid_dimension(dim: &str, pc: &str) -> ApiError {
    ApiError::client(
        "InvalidUsageDimensionException",
        format!("The usage dimension '{dim}' is not valid for product '{pc}'."),
    )
}

fn invalid_license(msg: String) -> ApiError {
    ApiError::client("InvalidLicenseException", msg)
}

/// Resolves one `UsageRecord` of a batch to what will be billed, or the error that
/// rejects the whole batch. `n` is the 1-based position used in messages.
fn prepare_record(
    cat: &Catalog,
    product_code: Option<&str>,
    r: &UsageRecord,
    n: usize,
) -> Result<Prepared, ApiError> {
    let path = || format!("usageRecords.{n}.member");
    let (customer, by_account) = match (&r.customer_identifier, &r.customer_aws_account_id) {
        (Some(c), None) => (c.as_str(), false),
        (None, Some(a)) => (a.as_str(), true),
        _ => {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value at '{}' failed to satisfy constraint: exactly one of customerIdentifier or customerAWSAccountId must be set",
                path()
            )));
        }
    };
    let (pc, scope, license) = match &r.license_arn {
        Some(arn) => {
            let Some(lic) = cat.licenses.get(arn) else {
                return Err(invalid_license(format!("LicenseArn '{arn}' is not valid.")));
            };
            if let Some(pc) = product_code {
                if pc != lic.product_code {
                    return Err(invalid_license(format!(
                        "LicenseArn '{arn}' is not a license for product '{pc}'."
                    )));
                }
            }
            (lic.product_code.as_str(), arn.as_str(), Some(lic))
        }
        None => {
            let pc = product_code.unwrap_or_default();
            (pc, pc, None)
        }
    };
    let Some(product) = cat.products.get(pc) else {
        return Err(invalid_product(pc));
    };
    let dim = r.dimension.as_deref().unwrap_or_default();
    if !product.dimensions.contains(dim) {
        return Err(invalid_dimension(dim, pc));
    }
    let subscribed = if by_account {
        match license {
            Some(lic) if lic.customer_aws_account_id == customer => lic.subscribed,
            Some(_) => {
                return Err(invalid_license(format!(
                    "LicenseArn does not belong to customer account '{customer}'."
                )))
            }
            // No license: the account's subscription to the product, as for an identifier.
            None => match cat
                .customers
                .values()
                .find(|c| c.aws_account_id.as_deref() == Some(customer))
            {
                Some(c) => c.subscribed.contains(pc),
                None => {
                    return Err(ApiError::client(
                        "InvalidCustomerIdentifierException",
                        format!("Customer AWS account '{customer}' does not exist."),
                    ))
                }
            },
        }
    } else {
        let Some(c) = cat.customers.get(customer) else {
            return Err(ApiError::client(
                "InvalidCustomerIdentifierException",
                format!("Customer identifier '{customer}' does not exist."),
            ));
        };
        match license {
            // The model's InvalidLicenseException: "Ensure the LicenseArn is valid, matches
            // the customer, and usage is within the license activation period."
            Some(lic) => {
                if c.aws_account_id.as_deref() != Some(lic.customer_aws_account_id.as_str()) {
                    return Err(invalid_license(format!(
                        "LicenseArn does not belong to customer '{customer}'."
                    )));
                }
                lic.subscribed
            }
            None => c.subscribed.contains(pc),
        }
    };
    let quantity = r.quantity.unwrap_or(0);
    check_allocations(&r.usage_allocations, quantity)?;
    let timestamp = r
        .timestamp
        .as_ref()
        .map(model::timestamp_secs)
        .unwrap_or(f64::NAN);
    let hour = hour_of(timestamp);
    let mut key = String::with_capacity(scope.len() + customer.len() + dim.len() + 16);
    key.push_str(scope);
    key.push(SEP);
    key.push(if by_account { 'A' } else { 'C' });
    key.push_str(customer);
    key.push(SEP);
    key.push_str(dim);
    key.push(SEP);
    let _ = write!(key, "{hour}");
    Ok(Prepared {
        key,
        product_code: pc.to_string(),
        subscribed,
        hour,
        timestamp,
        quantity,
    })
}

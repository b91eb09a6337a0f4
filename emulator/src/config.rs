// SPDX-License-Identifier: Apache-2.0
// Emulator configuration: identities, products, customers, licenses, registration tokens, windows.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    CUSTOMER_AWS_ACCOUNT_ID, DEFAULT_ACCESS_KEY_ID, DEFAULT_REGION, DEFAULT_SECRET_ACCESS_KEY,
    LICENSE_ARN, PRODUCT_CODE, SESSION_ACCESS_KEY_ID, SESSION_SECRET_ACCESS_KEY, SESSION_TOKEN,
};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// Everything the emulator knows: where it listens, whom it trusts and what it sells.
///
/// Every field has a default (see [`EmulatorConfig::default`]), so a JSON file only
/// needs the fields it changes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct EmulatorConfig {
    /// TCP port on 127.0.0.1; 0 picks a free port.
    pub port: u16,
    /// The region requests must be signed for.
    pub region: String,
    /// Identities accepted for SigV4.
    pub credentials: Vec<CredentialConfig>,
    /// Products and their dimensions.
    pub products: Vec<ProductConfig>,
    /// Customers known by `CustomerIdentifier`.
    pub customers: Vec<CustomerConfig>,
    /// Licenses (Concurrent Agreements): `LicenseArn` to account and product.
    pub licenses: Vec<LicenseConfig>,
    /// Registration tokens understood by `ResolveCustomer`.
    pub registration_tokens: Vec<RegistrationTokenConfig>,
    /// Oldest accepted usage timestamp, in seconds before now (default 6 hours).
    pub max_past_secs: i64,
    /// Newest accepted usage timestamp, in seconds after now (default 300).
    pub max_future_secs: i64,
    /// Largest accepted difference between `X-Amz-Date` and now (default 300: the 5 minutes
    /// of AWS JSON services, "Signature expired: … (… - 5 min.)").
    pub max_clock_skew_secs: i64,
    /// How far the emulator's clock is from the machine's, in seconds (default 0). Signatures
    /// and usage timestamps are judged, and `Date` headers written, by the emulator's clock:
    /// to a client it is a service seen from a machine whose clock is off by minus this.
    pub clock_offset_secs: i64,
    /// Directory that keeps the ledger and de-duplication tables across restarts.
    pub state_dir: Option<PathBuf>,
    /// How many requests the request log keeps (oldest dropped first).
    pub request_log_limit: usize,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// HMAC key used to sign the `RegisterUsage` JWT.
    pub register_usage_signing_key: String,
    /// `PublicKeyRotationTimestamp` returned by `RegisterUsage` (epoch seconds) for a public
    /// key version older than [`Self::current_public_key_version`]: as the service, only when
    /// the version asked for has expired.
    pub public_key_rotation_timestamp: i64,
    /// The newest public key version (default 2): `RegisterUsage` refuses a newer one, and
    /// answers an older one with `PublicKeyRotationTimestamp`.
    pub current_public_key_version: i64,
}

/// One SigV4 identity.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CredentialConfig {
    /// Access key id (the first part of the `Credential=` scope).
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// When set, requests must carry this value, signed, in `X-Amz-Security-Token`.
    #[serde(default)]
    pub session_token: Option<String>,
    /// The seller's AWS account the identity belongs to (default [`SELLER_ACCOUNT_ID`]):
    /// a `ClientToken` is idempotent per account, so replicas of one seller using different
    /// identities share the token space, as with the service.
    #[serde(default)]
    pub account_id: Option<String>,
    /// When the identity's session ends (epoch seconds): from then on its requests are
    /// refused `ExpiredTokenException`, as the service refuses an expired STS session.
    /// `None`: never.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// The EC2 instance, ECS task or EKS pod whose credentials these are: `MeterUsage` takes
    /// one quantity per product, dimension and hour from each, as the service does, whatever
    /// key signs (an instance role's credentials rotate within the hour). `None`: the access
    /// key id, an instance of its own.
    #[serde(default)]
    pub instance: Option<String>,
}

/// The account of every identity that names none.
pub const SELLER_ACCOUNT_ID: &str = "999988887777";

/// A product and the dimensions it meters.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProductConfig {
    /// Product code.
    pub product_code: String,
    /// Dimension names accepted for this product.
    #[serde(default)]
    pub dimensions: Vec<String>,
    /// Whether the caller is entitled to it (`RegisterUsage`, `MeterUsage`).
    #[serde(default = "yes")]
    pub entitled: bool,
}

/// A customer known by `CustomerIdentifier`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CustomerConfig {
    /// The `CustomerIdentifier`.
    pub customer_identifier: String,
    /// The customer's AWS account id, if known.
    #[serde(default)]
    pub customer_aws_account_id: Option<String>,
    /// Product codes the customer is subscribed to.
    #[serde(default)]
    pub subscribed_products: Vec<String>,
}

/// A license granted to an AWS account for a product.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LicenseConfig {
    /// The license ARN.
    pub license_arn: String,
    /// The account holding the license.
    pub customer_aws_account_id: String,
    /// The licensed product.
    pub product_code: String,
    /// Whether the license is active (default true); records for an inactive one get
    /// `CustomerNotSubscribed`, as for an unsubscribed `CustomerIdentifier`.
    #[serde(default = "yes")]
    pub subscribed: bool,
}

/// What `ResolveCustomer` returns for a registration token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RegistrationTokenConfig {
    /// The token.
    pub token: String,
    /// Resolved `CustomerIdentifier` (absent for a product metered by license, whose
    /// answer names the account and the license only: every member of the result is
    /// optional).
    #[serde(default)]
    pub customer_identifier: Option<String>,
    /// Resolved `ProductCode` (absent for a product metered by license).
    #[serde(default)]
    pub product_code: Option<String>,
    /// Resolved `CustomerAWSAccountId`.
    #[serde(default)]
    pub customer_aws_account_id: Option<String>,
    /// Resolved `LicenseArn`.
    #[serde(default)]
    pub license_arn: Option<String>,
    /// When true the token answers `ExpiredTokenException`.
    #[serde(default)]
    pub expired: bool,
}

fn yes() -> bool {
    true
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        let mut customers: Vec<CustomerConfig> = (1..=50)
            .map(|i| CustomerConfig {
                customer_identifier: format!("cust-{i}"),
                customer_aws_account_id: (i == 1).then(|| CUSTOMER_AWS_ACCOUNT_ID.to_string()),
                subscribed_products: vec![PRODUCT_CODE.to_string()],
            })
            .collect();
        customers.push(CustomerConfig {
            customer_identifier: "cust-unsubscribed".into(),
            customer_aws_account_id: None,
            subscribed_products: vec![],
        });
        let token = |token: &str, expired: bool| RegistrationTokenConfig {
            token: token.into(),
            customer_identifier: Some("cust-1".into()),
            product_code: Some(PRODUCT_CODE.into()),
            customer_aws_account_id: Some(CUSTOMER_AWS_ACCOUNT_ID.into()),
            license_arn: Some(LICENSE_ARN.into()),
            expired,
        };
        // A product metered by license: the answer names the account and the license only.
        let by_license = RegistrationTokenConfig {
            customer_identifier: None,
            product_code: None,
            ..token("reg-token-license", false)
        };
        EmulatorConfig {
            port: 0,
            region: DEFAULT_REGION.into(),
            credentials: vec![
                CredentialConfig {
                    access_key_id: DEFAULT_ACCESS_KEY_ID.into(),
                    secret_access_key: DEFAULT_SECRET_ACCESS_KEY.into(),
                    session_token: None,
                    account_id: None,
                    expires_at: None,
                    instance: None,
                },
                CredentialConfig {
                    access_key_id: SESSION_ACCESS_KEY_ID.into(),
                    secret_access_key: SESSION_SECRET_ACCESS_KEY.into(),
                    session_token: Some(SESSION_TOKEN.into()),
                    account_id: None,
                    expires_at: None,
                    instance: None,
                },
            ],
            products: vec![
                ProductConfig {
                    product_code: PRODUCT_CODE.into(),
                    dimensions: vec!["users".into(), "gb".into(), "requests".into()],
                    entitled: true,
                },
                ProductConfig {
                    product_code: "prod-not-entitled".into(),
                    dimensions: vec!["users".into()],
                    entitled: false,
                },
            ],
            customers,
            licenses: vec![LicenseConfig {
                license_arn: LICENSE_ARN.into(),
                customer_aws_account_id: CUSTOMER_AWS_ACCOUNT_ID.into(),
                product_code: PRODUCT_CODE.into(),
                subscribed: true,
            }],
            registration_tokens: vec![
                token("reg-token-valid", false),
                token("reg-token-expired", true),
                by_license,
            ],
            max_past_secs: 6 * 3600,
            max_future_secs: 300,
            max_clock_skew_secs: 300,
            clock_offset_secs: 0,
            state_dir: None,
            request_log_limit: 10_000,
            max_body_bytes: 1 << 20,
            register_usage_signing_key: "emulator-register-usage-key".into(),
            public_key_rotation_timestamp: 1_767_225_600,
            current_public_key_version: 2,
        }
    }
}

impl EmulatorConfig {
    /// Reads a configuration from a JSON file (missing fields take their defaults).
    pub fn from_json_file(path: impl AsRef<Path>) -> io::Result<Self> {
        let text = std::fs::read(path)?;
        serde_json::from_slice(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// Lookup tables built once from a configuration (shared read-only by request handlers).
#[derive(Debug)]
pub(crate) struct Catalog {
    pub config: EmulatorConfig,
    pub credentials: HashMap<String, CredentialConfig>,
    pub products: HashMap<String, Product>,
    pub customers: HashMap<String, Customer>,
    pub licenses: HashMap<String, LicenseConfig>,
    pub tokens: HashMap<String, RegistrationTokenConfig>,
}

#[derive(Debug)]
pub(crate) struct Product {
    pub dimensions: HashSet<String>,
    pub entitled: bool,
}

#[derive(Debug)]
pub(crate) struct Customer {
    pub aws_account_id: Option<String>,
    pub subscribed: HashSet<String>,
}

impl Catalog {
    pub fn new(config: EmulatorConfig) -> Self {
        let credentials = config
            .credentials
            .iter()
            .map(|c| (c.access_key_id.clone(), c.clone()))
            .collect();
        let products = config
            .products
            .iter()
            .map(|p| {
                let product = Product {
                    dimensions: p.dimensions.iter().cloned().collect(),
                    entitled: p.entitled,
                };
                (p.product_code.clone(), product)
            })
            .collect();
        let customers = config
            .customers
            .iter()
            .map(|c| {
                let customer = Customer {
                    aws_account_id: c.customer_aws_account_id.clone(),
                    subscribed: c.subscribed_products.iter().cloned().collect(),
                };
                (c.customer_identifier.clone(), customer)
            })
            .collect();
        let licenses = config
            .licenses
            .iter()
            .map(|l| (l.license_arn.clone(), l.clone()))
            .collect();
        let tokens = config
            .registration_tokens
            .iter()
            .map(|t| (t.token.clone(), t.clone()))
            .collect();
        Catalog {
            config,
            credentials,
            products,
            customers,
            licenses,
            tokens,
        }
    }
}

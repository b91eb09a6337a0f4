// SPDX-License-Identifier: Apache-2.0
// Where settings come from: the code, the environment, the shared config file's profile.

//! The sources of configuration, read once when a [`crate::Config`] is built.
//!
//! Every setting is resolved in the same order, in the core and so in every face alike:
//! **code** (what the builder or a face's constructor was given) beats the **environment**
//! (`AWS_*` variables) beats the **profile** of the shared config and credentials files
//! (`~/.aws/config`, `~/.aws/credentials`, or `AWS_CONFIG_FILE` and
//! `AWS_SHARED_CREDENTIALS_FILE`) beats the default. The profile is the one the code names,
//! else `AWS_PROFILE`, else `default`.
//!
//! The files are read and parsed by aws-config's own profile loader (`aws_config::profile`),
//! so sections, comments, continuation lines, `[profile x]` versus `[x]` and the merge of the
//! two files follow the AWS SDKs' rules exactly. Its loader is `async` but only reads files
//! with blocking `std::fs` calls, so it is polled once here: this runs inside synchronous
//! builders, possibly on a runtime thread, where no runtime may be blocked on.
//!
//! Every value that cannot be used is an [`crate::ErrorCode::InvalidConfig`] error naming the
//! setting and where the value came from (the variable, the profile key or the code).

use std::collections::HashMap;
use std::fmt;

use crate::Error;

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Given in code (the builder, a face's constructor or setter), under this name.
    Code(&'static str),
    /// The environment variable of this name.
    Env(&'static str),
    /// A key of the selected profile (`services.marketplace_metering.endpoint_url` for the
    /// services section).
    Profile {
        /// The profile's name.
        profile: String,
        /// The key.
        key: String,
    },
    /// Nothing set it.
    Default,
}

impl Origin {
    /// The name of the setting as its source spells it: `AWS_MAX_ATTEMPTS`, `max_attempts`.
    pub fn name(&self) -> &str {
        match self {
            Origin::Code(n) | Origin::Env(n) => n,
            Origin::Profile { key, .. } => key,
            Origin::Default => "default",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Code(n) => write!(f, "{n} (set in code)"),
            Origin::Env(n) => write!(f, "{n} (environment variable)"),
            Origin::Profile { profile, key } => {
                write!(f, "{key} (profile `{profile}` of the shared config file)")
            }
            Origin::Default => f.write_str("the default"),
        }
    }
}

/// An [`crate::ErrorCode::InvalidConfig`] error naming the setting and its origin.
pub(crate) fn invalid(origin: &Origin, problem: impl fmt::Display) -> Error {
    Error::invalid_setting(origin.name().to_owned(), format!("{origin}: {problem}"))
}

/// The environment and the selected profile, read once.
pub(crate) struct Sources {
    /// `None`: the process environment.
    env: Option<HashMap<String, String>>,
    profile_name: String,
    #[cfg(feature = "default-chain")]
    profile: Option<aws_config::profile::ProfileSet>,
}

impl Sources {
    /// Reads the environment (`env`, or the process's when `None`) and the selected profile.
    pub(crate) fn load(
        env: Option<HashMap<String, String>>,
        code_profile: Option<&str>,
    ) -> Result<Self, Error> {
        let mut this = Sources {
            env,
            profile_name: String::new(),
            #[cfg(feature = "default-chain")]
            profile: None,
        };
        let from_code = code_profile
            .filter(|p| !p.trim().is_empty())
            .map(|p| p.trim().to_owned());
        let named = from_code.is_some() || this.env("AWS_PROFILE").is_some();
        this.profile_name = from_code
            .clone()
            .or_else(|| this.env("AWS_PROFILE"))
            .unwrap_or_else(|| "default".to_owned());
        #[cfg(feature = "default-chain")]
        {
            this.profile = this.load_profile()?;
            // A profile named but in neither file (a typo) is refused, as botocore's
            // ProfileNotFound: read as empty, the environment would pick the region and the
            // endpoint without the FIPS or endpoint settings the intended profile holds.
            // `default` may be absent, as there.
            let missing = this.profile.as_ref().is_some_and(|set| {
                this.profile_name != "default" && set.get_profile(&this.profile_name).is_none()
            });
            if named && missing {
                let field = if from_code.is_some() {
                    "profile"
                } else {
                    "AWS_PROFILE"
                };
                return Err(Error::invalid_setting(
                    field.to_owned(),
                    format!(
                        "the profile `{}` is not in the shared config or credentials file",
                        this.profile_name
                    ),
                ));
            }
        }
        #[cfg(not(feature = "default-chain"))]
        let _ = named;
        Ok(this)
    }

    /// The selected profile's name.
    pub(crate) fn profile_name(&self) -> &str {
        &self.profile_name
    }

    /// A variable, trimmed; empty counts as unset. A value that is not UTF-8 is read with
    /// its bad bytes replaced (U+FFFD), for the setting's own check to refuse naming the
    /// variable: taken as unset, `AWS_REGION` fell through to `AWS_DEFAULT_REGION` (another
    /// region) without a word.
    pub(crate) fn env(&self, key: &str) -> Option<String> {
        let v = match &self.env {
            Some(map) => map.get(key).cloned(),
            None => env_lossy(key),
        }?;
        let v = v.trim();
        (!v.is_empty()).then(|| v.to_owned())
    }

    /// The first of `keys` that is set, with its origin.
    pub(crate) fn first_env(&self, keys: &[&'static str]) -> Option<(String, Origin)> {
        keys.iter()
            .find_map(|k| self.env(k).map(|v| (v, Origin::Env(k))))
    }

    /// A key of the selected profile, trimmed; empty counts as unset.
    pub(crate) fn profile(&self, key: &str) -> Option<(String, Origin)> {
        #[cfg(feature = "default-chain")]
        {
            let set = self.profile.as_ref()?;
            let v = set.get_profile(&self.profile_name)?.get(key)?.trim();
            (!v.is_empty()).then(|| (v.to_owned(), self.profile_origin(key.to_owned())))
        }
        #[cfg(not(feature = "default-chain"))]
        {
            let _ = key;
            None
        }
    }

    /// `key` of this service in the `[services name]` section the profile's `services` names:
    /// `marketplace_metering =` then indented `key = value` lines.
    pub(crate) fn service_profile(&self, key: &str) -> Option<(String, Origin)> {
        #[cfg(feature = "default-chain")]
        {
            use aws_runtime::env_config::property::PropertiesKey;
            let set = self.profile.as_ref()?;
            let section = set.get_profile(&self.profile_name)?.get("services")?.trim();
            // The SDKs' guide spells the service `marketplace_metering`; aws-config's own
            // lookup uses the service id with hyphens. Both are accepted.
            ["marketplace_metering", "marketplace-metering"]
                .iter()
                .find_map(|service| {
                    let k = PropertiesKey::builder()
                        .section_key("services")
                        .section_name(section)
                        .property_name(*service)
                        .sub_property_name(key)
                        .build()
                        .ok()?;
                    let v = set.other_sections().get(&k)?.trim();
                    (!v.is_empty()).then(|| {
                        let origin = self.profile_origin(format!("services.{service}.{key}"));
                        (v.to_owned(), origin)
                    })
                })
        }
        #[cfg(not(feature = "default-chain"))]
        {
            let _ = key;
            None
        }
    }

    /// The environment variables (in order), then the profile key.
    pub(crate) fn lookup(&self, env: &[&'static str], key: &str) -> Option<(String, Origin)> {
        self.first_env(env).or_else(|| self.profile(key))
    }

    #[cfg(feature = "default-chain")]
    fn profile_origin(&self, key: String) -> Origin {
        Origin::Profile {
            profile: self.profile_name.clone(),
            key,
        }
    }

    #[cfg(feature = "default-chain")]
    fn load_profile(&self) -> Result<Option<aws_config::profile::ProfileSet>, Error> {
        use aws_runtime::env_config::file::EnvConfigFiles as ProfileFiles;
        use aws_types::os_shim_internal::{Env, Fs};
        let env = match &self.env {
            Some(map) => Env::from(map.clone()),
            None => {
                // aws-config reads these itself, and counts a value that is not UTF-8 as
                // unset: `~/.aws/config` would be read instead, another profile's region
                // and credentials.
                for key in ["AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"] {
                    if std::env::var_os(key).is_some_and(|v| v.to_str().is_none()) {
                        return Err(Error::invalid_setting(
                            key.to_owned(),
                            format!(
                                "{key} is not UTF-8 ({:?}): name a file whose path is",
                                env_lossy(key).unwrap_or_default()
                            ),
                        ));
                    }
                }
                Env::real()
            }
        };
        let fs = Fs::real();
        let files = ProfileFiles::default();
        let load =
            aws_config::profile::load(&fs, &env, &files, Some(self.profile_name.clone().into()));
        match poll_once(load) {
            Some(Ok(set)) => Ok(Some(set)),
            Some(Err(e)) => Err(Error::invalid_setting(
                "AWS_CONFIG_FILE".to_owned(),
                format!(
                    "the shared config or credentials file cannot be read: {}",
                    one_line(&e)
                ),
            )),
            // aws-config's loader reads with std::fs and never waits; if a future version
            // does, the settings the files hold are not read rather than blocking here.
            None => Ok(None),
        }
    }
}

/// Polls `fut` once; `None` when it is not ready.
#[cfg(feature = "default-chain")]
fn poll_once<F: std::future::Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

#[cfg(feature = "default-chain")]
fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    crate::error::with_causes(e).replace('\n', " ")
}

/// A boolean as the SDKs read it: `true` or `false`, in any case.
pub(crate) fn parse_bool(v: &str, origin: &Origin) -> Result<bool, Error> {
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(invalid(
            origin,
            format!("must be `true` or `false`, got {v:?}"),
        ))
    }
}

/// The process's variable `key`, its bytes that are not UTF-8 replaced (see
/// [`Sources::env`]).
pub(crate) fn env_lossy(key: &str) -> Option<String> {
    std::env::var_os(key).map(|v| v.to_string_lossy().into_owned())
}

// SPDX-License-Identifier: Apache-2.0
// `ManualClock` for JS: the core's manual clock, read natively by the meter.

use marketplace_metering::meter::ManualClock;
use napi_derive::napi;

use crate::convert;
use napi::bindgen_prelude::*;

/// A clock set by hand, for tests and examples: the meter's hours seal when the clock is
/// moved, not when real time passes. The meter reads it natively (no JS call per read).
///
/// ### Example
/// ```js
/// const clock = new ManualClock(new Date('2026-11-26T10:00:00Z'))
/// clock.advance(3600)
/// clock.now() // 2026-11-26T11:00:00.000Z
/// ```
#[napi(js_name = "ManualClock")]
pub struct JsManualClock {
    pub(super) inner: ManualClock,
}

pub(super) fn epoch_secs(env: &Env, at: Option<Unknown<'_>>, field: &'static str) -> Result<i64> {
    match at {
        None => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)),
        Some(v) => convert::meter_time(v, field)
            .map(|t| t.secs())
            .map_err(|e| e.into_napi(env)),
    }
}

#[napi]
impl JsManualClock {
    /// A clock reading `at` (a `Date`, epoch seconds or an ISO-8601 string); default: now.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        #[napi(ts_arg_type = "Date | number | string")] at: Option<Unknown<'_>>,
    ) -> Result<Self> {
        Ok(JsManualClock {
            inner: ManualClock::new(epoch_secs(&env, at, "at")?),
        })
    }

    /// Sets the clock to `at` (a `Date`, epoch seconds or an ISO-8601 string).
    #[napi]
    pub fn set(
        &self,
        env: Env,
        #[napi(ts_arg_type = "Date | number | string")] at: Unknown<'_>,
    ) -> Result<()> {
        self.inner.set(epoch_secs(&env, Some(at), "at")?);
        Ok(())
    }

    /// Moves the clock by `seconds` (an integer; negative moves it back).
    #[napi]
    pub fn advance(&self, env: Env, seconds: Unknown<'_>) -> Result<()> {
        let s = convert::meter_seconds_int(seconds, "seconds").map_err(|e| e.into_napi(&env))?;
        self.inner.advance(s);
        Ok(())
    }

    /// The time the clock reads.
    #[napi(ts_return_type = "Date")]
    pub fn now<'env>(&self, env: &'env Env) -> Result<napi::JsDate<'env>> {
        env.create_date(self.inner.now() as f64 * 1000.0)
    }
}

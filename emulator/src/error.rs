// SPDX-License-Identifier: Apache-2.0
// Service errors as awsJson1.1 answers them: an HTTP status plus {"__type", "message"}.

use std::borrow::Cow;

/// The namespace the service uses in fully qualified error types.
pub(crate) const ERROR_NAMESPACE: &str = "com.amazonaws.marketplace.metering";

/// One error answer.
#[derive(Clone, Debug)]
pub(crate) struct ApiError {
    pub status: u16,
    pub code: Cow<'static, str>,
    pub message: String,
    /// Write `__type` as `namespace#Code`.
    pub namespaced: bool,
}

impl ApiError {
    pub fn new(
        status: u16,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            namespaced: false,
        }
    }

    /// 400 with a modeled or protocol error code.
    pub fn client(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::client("ValidationException", message)
    }

    pub fn serialization(message: impl Into<String>) -> Self {
        Self::client("SerializationException", message)
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        let ty = if self.namespaced {
            format!("{ERROR_NAMESPACE}#{}", self.code)
        } else {
            self.code.to_string()
        };
        serde_json::json!({ "__type": ty, "message": self.message })
            .to_string()
            .into_bytes()
    }
}

// SPDX-License-Identifier: Apache-2.0
// The one table of error codes: every face's classes, statuses and enums are made from it.

// Self-contained (no `crate::` paths): `bindings-c/build.rs` includes this file to write the C
// face's `mm_status` enum from the same table.

/// Declares [`ErrorCode`] from two lists. `local` codes are this library's own: each face
/// maps them by hand (through [`LocalCode`], matched without a wildcard, so a new local code
/// breaks every face's build until mapped). `service` codes are the service's exceptions:
/// the faces make their classes from [`ErrorCode::ALL`], so adding one here is the only edit.
///
/// A service row is `Name = number, kind, blame [, server];`: `kind` is an [`ErrorKind`];
/// `blame` is `records` or `call`, what the code says is wrong when it answers a whole call
/// and retrying cannot help (see [`Blame`]); `server` marks a server fault.
macro_rules! error_codes {
    (
        local { $( $(#[doc = $ldoc:literal])* $lname:ident = $lnum:literal; )* }
        service { $( $(#[doc = $doc:literal])* $name:ident = $num:literal, $kind:ident, $blame:ident $(, $fault:ident)?; )* }
    ) => {
        /// A stable code for every kind of failure.
        ///
        /// Numbers are stable and never reused (the C face exposes them as `mm_status`);
        /// 0, 1 and 2 are reserved for the C face's `OK`, `NULL_PARAMETER` and `PANIC`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        pub enum ErrorCode {
            $( $(#[doc = $ldoc])* $lname = $lnum, )*
            $( $(#[doc = $doc])* $name = $num, )*
        }

        /// The codes this library raises itself (every [`ErrorKind::Local`] code), for a face
        /// to map each one by hand: see [`ErrorCode::local`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum LocalCode {
            $( $(#[doc = $ldoc])* $lname, )*
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$lname, )* $( ErrorCode::$name, )* ];

            /// The code as a string: the AWS exception name for service codes
            /// (`"ThrottlingException"`), the local name otherwise (`"InvalidInput"`).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( ErrorCode::$lname => stringify!($lname), )*
                    $( ErrorCode::$name => stringify!($name), )*
                }
            }

            /// The code's documentation, one line per source line (the C face's `mm_status`
            /// comments and the faces' class docs).
            pub const fn doc(self) -> &'static str {
                match self {
                    $( ErrorCode::$lname => concat!($($ldoc, "\n",)*), )*
                    $( ErrorCode::$name => concat!($($doc, "\n",)*), )*
                }
            }

            /// The stable number of this code.
            pub const fn as_u32(self) -> u32 { self as u32 }

            /// Where the code comes from.
            pub const fn kind(self) -> ErrorKind {
                match self {
                    $( ErrorCode::$lname => ErrorKind::Local, )*
                    $( ErrorCode::$name => ErrorKind::$kind, )*
                }
            }

            /// The local code, or `None` for a service code.
            pub const fn local(self) -> Option<LocalCode> {
                match self {
                    $( ErrorCode::$lname => Some(LocalCode::$lname), )*
                    $( ErrorCode::$name => None, )*
                }
            }

            /// `true` when the failure is the server's (`$fault = "server"` in SDK v3 terms).
            pub const fn is_server_fault(self) -> bool {
                match self {
                    $( ErrorCode::$lname => false, )*
                    $( ErrorCode::$name => error_codes!(@fault $($fault)?), )*
                }
            }

            /// What a non-retryable error with this code that answered a whole call is
            /// about: the table's `blame` column for a service code, `local(code)` for a
            /// local one (those are decided by hand, where they are used).
            pub(crate) fn blame(self, local: impl FnOnce(LocalCode) -> Blame) -> Blame {
                match self {
                    $( ErrorCode::$lname => local(LocalCode::$lname), )*
                    $( ErrorCode::$name => error_codes!(@blame $blame), )*
                }
            }

            /// The code for a service error code string, if it is in the table.
            pub fn from_service_code(code: &str) -> Option<ErrorCode> {
                match code {
                    $( stringify!($name) => Some(ErrorCode::$name), )*
                    _ => None,
                }
            }

            /// The code with this stable number, if any.
            pub fn from_u32(n: u32) -> Option<ErrorCode> {
                match n {
                    $( $lnum => Some(ErrorCode::$lname), )*
                    $( $num => Some(ErrorCode::$name), )*
                    _ => None,
                }
            }
        }
    };
    (@blame records) => { Blame::Records };
    (@blame call) => { Blame::Call };
    (@fault server) => { true };
    (@fault) => { false };
}

/// Where an [`ErrorCode`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Raised by this library before or around the HTTP exchange.
    Local,
    /// An exception the service model lists for at least one operation.
    Modeled,
    /// A code every AWS JSON service may return that the model does not list
    /// (authentication, protocol, dry run).
    Common,
}

/// What a non-retryable error that answered a whole call is about: the usage meter
/// dead-letters the records for [`Blame::Records`] and keeps them sealed for [`Blame::Call`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Blame {
    /// The records themselves (a dimension, a customer, a timestamp, a quantity): the
    /// records are dead-lettered (a batch is first split to find the bad one).
    Records,
    /// The caller or the whole call (credentials, access, region, product code, a disabled
    /// API, an entitlement, a protocol error, an unknown error; a retryable code that arrives
    /// without retries left): nothing was metered and nothing about the records is wrong,
    /// so they stay sealed and the error is returned from the flush; once the configuration
    /// is fixed they are billed.
    Call,
}

// Service rows: `Name = number, kind, blame [, server];` (see `error_codes!` above).
error_codes! {
    local {
        /// The input violates the model's constraints; nothing was sent. The message names the field.
        InvalidInput = 3;
        /// The library was used in a state that cannot work (for example a blocking call from
        /// inside an async runtime thread).
        InvalidState = 4;
        /// The configuration cannot produce an endpoint or a client (no region, FIPS with a
        /// custom endpoint, a malformed URL, …).
        InvalidConfig = 5;
        /// No credentials could be loaded.
        Credentials = 6;
        /// The request could not be sent or its response could not be read (connection refused,
        /// reset, DNS, TLS).
        Dispatch = 7;
        /// Connecting took longer than the connect timeout.
        ConnectTimeout = 8;
        /// Waiting for the response took longer than the read timeout.
        ReadTimeout = 9;
        /// The service answered with a body that is not the JSON the protocol promises
        /// (truncated, HTML, garbage).
        InvalidResponse = 10;
        /// The service answered with an error code this library does not know; `Error::code()`
        /// gives the service's string.
        Unhandled = 11;
        /// A usage meter's write to the fleet store may or may not have committed: its answer
        /// was lost and the database stayed out of reach until the meter gave up. The meter
        /// keeps the event and writes it again under the same commit key at the next flush, so
        /// it is counted once either way: do not record it again. Only the end of the process
        /// before the database answers again loses it.
        OutcomeUnknown = 12;
    }
    service {
        /// An internal error occurred; retry your request.
        InternalServiceErrorException = 100, Modeled, call, server;
        /// The product code passed does not match the product code of the caller.
        InvalidProductCodeException = 101, Modeled, call;
        /// The usage dimension does not match one of the product's dimensions.
        InvalidUsageDimensionException = 102, Modeled, records;
        /// The tag is invalid, or the number of tags is greater than 5.
        InvalidTagException = 103, Modeled, records;
        /// Sum of allocated usage quantities is not equal to the usage quantity.
        InvalidUsageAllocationsException = 104, Modeled, records;
        /// You have metered usage for a CustomerIdentifier that does not exist.
        InvalidCustomerIdentifierException = 105, Modeled, records;
        /// The timestamp value passed in the request is older than allowed.
        TimestampOutOfBoundsException = 106, Modeled, records;
        /// The calls to the API are throttled.
        ThrottlingException = 107, Modeled, call;
        /// The API is disabled in the Region.
        DisabledApiException = 108, Modeled, call;
        /// The license is invalid.
        InvalidLicenseException = 109, Modeled, records;
        /// The endpoint being called is in a Region different from your EC2 instance, ECS task or EKS pod.
        InvalidEndpointRegionException = 110, Modeled, call;
        /// A metering record has already been emitted for the same resource, usage dimension and
        /// time, with a different quantity.
        DuplicateRequestException = 111, Modeled, records;
        /// The ClientToken is being used for multiple requests with different parameters.
        IdempotencyConflictException = 112, Modeled, records;
        /// The customer is not entitled to the product.
        CustomerNotEntitledException = 113, Modeled, call;
        /// RegisterUsage must be called in the same Region the ECS task was launched in.
        InvalidRegionException = 114, Modeled, call;
        /// The public key version is invalid.
        InvalidPublicKeyVersionException = 115, Modeled, call;
        /// AWS Marketplace does not support metering usage from the underlying platform.
        PlatformNotSupportedException = 116, Modeled, call;
        /// The registration token is invalid.
        InvalidTokenException = 117, Modeled, call;
        /// The submitted registration token has expired.
        ExpiredTokenException = 118, Modeled, call;

        /// The access key id is not known to the service.
        UnrecognizedClientException = 200, Common, call;
        /// The request signature does not match.
        InvalidSignatureException = 201, Common, call;
        /// The caller is not allowed to call this operation.
        AccessDeniedException = 202, Common, call;
        /// The service rejected the input (server-side validation).
        ValidationException = 203, Common, records;
        /// The service could not read the request body.
        SerializationException = 204, Common, call;
        /// The `X-Amz-Target` names no operation of this service.
        UnknownOperationException = 205, Common, call;
        /// A DryRun request would have succeeded.
        DryRunOperation = 206, Common, call;
        /// A DryRun request would have failed for lack of permission.
        UnauthorizedException = 207, Common, call;
        /// The Authorization header is malformed or incomplete.
        IncompleteSignatureException = 208, Common, call;
        /// The request carries no credentials.
        MissingAuthenticationTokenException = 209, Common, call;
        /// The signed request is too old or too far in the future.
        RequestExpired = 210, Common, call;
        /// The service is unavailable; retry.
        ServiceUnavailableException = 211, Common, call, server;
    }
}

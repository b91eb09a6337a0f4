// SPDX-License-Identifier: Apache-2.0
// The one table of error codes: every face's classes, statuses and enums are made from it.

// Self-contained (no `crate::` paths): `bindings-c/build.rs` includes this file to write the C
// face's `mm_status` enum from the same table.

/// Declares [`ErrorCode`] from two lists. `local` codes are this library's own: each face
/// maps them by hand (through [`LocalCode`], matched without a wildcard, so a new local code
/// breaks every face's build until mapped). `service` codes are the service's exceptions:
/// the faces make their classes from [`ErrorCode::ALL`], so adding one here is the only edit.
macro_rules! error_codes {
    (
        local { $( $(#[doc = $ldoc:literal])* $lname:ident = $lnum:literal; )* }
        service { $( $(#[doc = $doc:literal])* $name:ident = $num:literal, $kind:ident $(, $fault:ident)?; )* }
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
    }
    service {
        /// An internal error occurred; retry your request.
        InternalServiceErrorException = 100, Modeled, server;
        /// The product code passed does not match the product code of the caller.
        InvalidProductCodeException = 101, Modeled;
        /// The usage dimension does not match one of the product's dimensions.
        InvalidUsageDimensionException = 102, Modeled;
        /// The tag is invalid, or the number of tags is greater than 5.
        InvalidTagException = 103, Modeled;
        /// Sum of allocated usage quantities is not equal to the usage quantity.
        InvalidUsageAllocationsException = 104, Modeled;
        /// You have metered usage for a CustomerIdentifier that does not exist.
        InvalidCustomerIdentifierException = 105, Modeled;
        /// The timestamp value passed in the request is older than allowed.
        TimestampOutOfBoundsException = 106, Modeled;
        /// The calls to the API are throttled.
        ThrottlingException = 107, Modeled;
        /// The API is disabled in the Region.
        DisabledApiException = 108, Modeled;
        /// The license is invalid.
        InvalidLicenseException = 109, Modeled;
        /// The endpoint being called is in a Region different from your EC2 instance, ECS task or EKS pod.
        InvalidEndpointRegionException = 110, Modeled;
        /// A metering record has already been emitted for the same resource, usage dimension and
        /// time, with a different quantity.
        DuplicateRequestException = 111, Modeled;
        /// The ClientToken is being used for multiple requests with different parameters.
        IdempotencyConflictException = 112, Modeled;
        /// The customer is not entitled to the product.
        CustomerNotEntitledException = 113, Modeled;
        /// RegisterUsage must be called in the same Region the ECS task was launched in.
        InvalidRegionException = 114, Modeled;
        /// The public key version is invalid.
        InvalidPublicKeyVersionException = 115, Modeled;
        /// AWS Marketplace does not support metering usage from the underlying platform.
        PlatformNotSupportedException = 116, Modeled;
        /// The registration token is invalid.
        InvalidTokenException = 117, Modeled;
        /// The submitted registration token has expired.
        ExpiredTokenException = 118, Modeled;

        /// The access key id is not known to the service.
        UnrecognizedClientException = 200, Common;
        /// The request signature does not match.
        InvalidSignatureException = 201, Common;
        /// The caller is not allowed to call this operation.
        AccessDeniedException = 202, Common;
        /// The service rejected the input (server-side validation).
        ValidationException = 203, Common;
        /// The service could not read the request body.
        SerializationException = 204, Common;
        /// The `X-Amz-Target` names no operation of this service.
        UnknownOperationException = 205, Common;
        /// A DryRun request would have succeeded.
        DryRunOperation = 206, Common;
        /// A DryRun request would have failed for lack of permission.
        UnauthorizedException = 207, Common;
        /// The Authorization header is malformed or incomplete.
        IncompleteSignatureException = 208, Common;
        /// The request carries no credentials.
        MissingAuthenticationTokenException = 209, Common;
        /// The signed request is too old or too far in the future.
        RequestExpired = 210, Common;
        /// The service is unavailable; retry.
        ServiceUnavailableException = 211, Common, server;
    }
}

//! What every door tells a client in the same words: the error codes (`extensions.code`)
//! and the client's address the limits count by. A leaf: the limits
//! ([`crate::limits`]) and the schema both name them, neither through the other.

use std::net::IpAddr;

/// The client's address, for per-address limits.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

/// `extensions.code` of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BadUserInput,
    Unauthenticated,
    Forbidden,
    NotFound,
    RateLimited,
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadUserInput => "BAD_USER_INPUT",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::NotFound => "NOT_FOUND",
            Code::RateLimited => "RATE_LIMITED",
            Code::Internal => "INTERNAL_SERVER_ERROR",
        }
    }
}

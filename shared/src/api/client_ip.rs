//! The address a request came from, for per-client limits.
//!
//! Two runtimes fill it: Lambda (the function URL's request context, `http.sourceIp`,
//! inserted as a [`ClientIp`] extension by the function's `main.rs`, since `shared` never
//! depends on the Lambda runtime) and devstack (the socket address, through axum's
//! `ConnectInfo`). Headers such as `X-Forwarded-For` are never read: a client can write them.
//!
//! **Unknown addresses do not bypass limits:** a request whose address neither runtime
//! provided is counted under the one shared key `unknown`, so all such requests share a
//! single client's allowance (and a warning is logged).

use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
};

use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;

/// The client's IP address, when the runtime knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    /// The key limits count this client under. IPv6 clients are grouped by their /64, the
    /// block one subscriber usually gets (otherwise one host could rotate through 2^64
    /// addresses); unknown clients share the key `unknown`.
    pub fn limit_key(&self) -> String {
        match self.0 {
            Some(IpAddr::V4(ip)) => ip.to_string(),
            Some(IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = ip.segments();
                    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
            None => "unknown".to_owned(),
        }
    }

    /// The address as text (for storing with a session), if known.
    pub fn address(&self) -> Option<String> {
        self.0.map(|ip| ip.to_string())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(ip) = parts.extensions.get::<ClientIp>() {
            return Ok(*ip);
        }
        if let Some(ConnectInfo(address)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            return Ok(Self(Some(address.ip())));
        }
        tracing::warn!("client address unknown; counted under the shared key `unknown`");
        Ok(Self(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_grouped_by_their_64_block() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        assert_eq!(ClientIp(Some(a)).limit_key(), ClientIp(Some(b)).limit_key());
        assert_eq!(ClientIp(Some(a)).limit_key(), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(ClientIp(Some(mapped)).limit_key(), "192.0.2.7");
        assert_eq!(ClientIp(None).limit_key(), "unknown");
    }
}

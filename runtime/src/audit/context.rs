//! Where the current request came from, for audit records: the HTTP gateway runs each
//! request's handler inside [`with_client`], and the audit log reads [`client_ip`] without
//! every operation having to pass it along. Outside a request (the CLI, background tasks)
//! there is none.

use std::future::Future;
use std::net::IpAddr;

tokio::task_local! {
    static CLIENT: IpAddr;
}

/// Runs `f` as the handling of a request from `ip`.
pub async fn with_client<F: Future>(ip: IpAddr, f: F) -> F::Output {
    CLIENT.scope(ip, f).await
}

/// The client address of the request being handled, if any.
pub fn client_ip() -> Option<IpAddr> {
    CLIENT.try_with(|ip| *ip).ok()
}

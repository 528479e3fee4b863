//! A full client lifecycle with the Rust API: fingerprint, activate, verify, a session that
//! heartbeats by itself, its events, end.
//!
//!     cargo run -p tessera-client --example lifecycle -- URL API_KEY LICENSE_KEY
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use tessera_client::{
    ActivateRequest, Client, SessionOptions, StartRequest, VerifyRequest, fingerprint,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, api_key, license_key] = args.as_slice() else {
        return Err("usage: lifecycle URL API_KEY LICENSE_KEY".into());
    };
    // End live sessions on the server if the process is interrupted.
    tessera_client::end_sessions_on_shutdown()?;

    let client = Client::new(url, api_key)?;
    let device = fingerprint().hardware_hash();
    client
        .activate(&ActivateRequest::new(license_key, &device))
        .await?;
    let verified = client
        .verify(&VerifyRequest {
            hardware_hash: Some(device.clone()),
            app_version: Some("1.0.0".into()),
            ..VerifyRequest::new(license_key)
        })
        .await?;
    println!(
        "verified update_available={}",
        u8::from(verified.update_available)
    );

    let options = SessionOptions::default().on_event(|event| println!("event {event:?}"));
    let mut start = StartRequest::new(license_key, &device);
    start.version = Some("1.0.0".into());
    let session = client.start_session_with(&start, options).await?;
    println!("session started");

    let deadline = Instant::now() + Duration::from_secs(30);
    while session.heartbeats() < 3 {
        if Instant::now() > deadline {
            return Err("no heartbeats".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "heartbeats {} valid {}",
        session.heartbeats(),
        u8::from(session.is_valid())
    );
    let reason = session.end().await?;
    println!("ended {}", reason.as_str());
    Ok(())
}

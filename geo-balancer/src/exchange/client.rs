//! Sending reports over HTTP (driver side).

use std::time::Duration;

use crate::errors::SendError;
use crate::exchange::report::LoadReport;
use crate::exchange::{SIGNATURE_HEADER, SITE_HEADER, auth};

/// A report ready for the wire: exact body bytes and its signature header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedReport {
    /// The sender (header value).
    pub sender: String,
    /// The receiving peer.
    pub peer: String,
    /// JSON body, exactly as signed.
    pub body: Vec<u8>,
    /// `sha256=<hex>`.
    pub signature: String,
}

/// Serializes and signs a report with the key shared with its receiver.
pub fn sign_report(report: &LoadReport, key: &[u8]) -> Result<SignedReport, SendError> {
    let body = serde_json::to_vec(report).map_err(|e| SendError::Encode(e.to_string()))?;
    let signature = auth::sign(key, &body);
    Ok(SignedReport {
        sender: report.sender.to_string(),
        peer: report.receiver.to_string(),
        body,
        signature,
    })
}

/// The HTTP client for reports (reqwest over rustls/ring).
#[derive(Debug, Clone)]
pub struct ReportClient {
    http: reqwest::Client,
    timeout: Duration,
}

impl ReportClient {
    /// A client with a per-request timeout.
    pub fn new(timeout: Duration) -> ReportClient {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        ReportClient { http, timeout }
    }

    /// POSTs one signed report to the peer's report URL.
    pub async fn send(&self, url: &str, report: &SignedReport) -> Result<(), SendError> {
        let resp = self
            .http
            .post(url)
            .timeout(self.timeout)
            .header(SITE_HEADER, &report.sender)
            .header(SIGNATURE_HEADER, &report.signature)
            .header("content-type", "application/json")
            .body(report.body.clone())
            .send()
            .await
            .map_err(|e| SendError::Transport {
                peer: report.peer.clone(),
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        Err(SendError::Rejected {
            peer: report.peer.clone(),
            status,
            body: body.chars().take(200).collect(),
        })
    }
}

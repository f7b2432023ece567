//! `/ui/messaging`: SMS and WhatsApp, in three tabs of one navigation entry:
//! - [`campaigns`]: message campaigns with their delivery progress, a form to create one with a sample
//!   rendered for a chosen customer, and sending to a segment or to customer ids;
//! - [`customers`]: the customers messages go to, and a CSV import with a progress bar and row errors;
//! - [`dead`]: messages that failed for good, to requeue.
//!
//! Each handler calls the admin API's own functions (`messaging::*`), so rules and the audit exist once.

pub mod campaigns;
pub mod customers;
pub mod dead;

use super::Chrome;
use crate::http::ApiError;

/// The tabs, in order: (path, catalog key).
pub const TABS: &[(&str, &str)] = &[
    ("/ui/messaging", "messaging.tab.campaigns"),
    ("/ui/messaging/customers", "messaging.tab.customers"),
    ("/ui/messaging/dead", "messaging.tab.dead"),
];

/// One tab of the bar on top of each messaging page.
#[derive(Debug)]
pub struct Tab {
    pub href: &'static str,
    pub label: String,
    pub active: bool,
}

pub fn tabs(c: &Chrome, active: &str) -> Vec<Tab> {
    TABS.iter().map(|(href, key)| Tab { href, label: c.t(key), active: *href == active }).collect()
}

/// What went wrong with a caller's request, in words for the page; `None` for our own failures, which
/// the caller turns into an error page.
pub fn problem_text(c: &Chrome, error: &ApiError) -> Option<String> {
    Some(match error {
        ApiError::Invalid(fields) | ApiError::BadFields(fields) => {
            let fields: Vec<String> = fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect();
            c.t1("messaging.invalid", fields.join("; "))
        }
        ApiError::NotFound(what) => c.t1("messaging.not_found", what),
        ApiError::Conflict(message) => c.t1("messaging.conflict", message),
        _ => return None,
    })
}

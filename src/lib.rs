//! warroom: an incident-response ChatOps bot. See ARCHITECTURE.md for the code map.

pub mod alertmanager;
pub mod app;
pub mod chat;
pub mod cli;
pub mod config;
pub mod core;
pub mod http;
pub mod metrics;
pub mod pagerduty;
pub mod render;
pub mod runbook;
pub mod store;
pub mod tls;

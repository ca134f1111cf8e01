//! warroom's integration tests: one binary, one module per area.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod alerts;
mod app;
mod console;
mod deploy;
mod discord;
mod discord_fake;
mod faults;
mod fuzz;
mod http;
mod kube_fake;
mod maintenance;
mod pagerduty;
mod parity;
mod playbooks;
mod postgres_tls;
mod postmortem;
mod render;
mod replicas;
mod runbooks;
mod slack;
mod slack_fake;
mod stats;
mod store_contract;

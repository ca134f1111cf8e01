//! Runbooks: actions against a Kubernetes cluster (`kube`), the guard that decides who may run
//! what where and holds mutating actions for confirmation (`guard`), and playbooks, ordered
//! steps loaded from `playbooks/*.yaml` (`playbook`).

pub mod action;
pub mod guard;
pub mod kube;
pub mod playbook;
pub mod redact;

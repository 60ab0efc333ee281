//! Test support shared by the fault tests: a fault-injecting TCP proxy, private network
//! namespaces for real blackholes, and a model-checked workload.
#![allow(dead_code)]

pub mod netns;
pub mod proxy;
pub mod workload;

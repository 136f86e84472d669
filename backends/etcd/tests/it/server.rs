//! Private etcd servers for fault tests.

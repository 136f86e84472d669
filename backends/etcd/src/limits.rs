//! Request limits: the shared ones of [`campanile::coordinator::limits`], as they are.

pub(crate) use campanile::coordinator::limits::{
    MAX_JOB_BYTES, check_batch, check_claim, check_job, check_jobs, check_node, check_record,
    check_ttl,
};

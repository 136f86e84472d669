//! Unit tests of the coordinator errors: typed ids and kept sources.

use std::error::Error;

use super::*;

#[test]
fn an_unavailability_keeps_its_source_and_ids_stay_typed() {
    let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline exceeded");
    let error = CoordError::unavailable_from("etcd put job", false, io);
    assert_eq!(
        error.source().map(ToString::to_string).as_deref(),
        Some("deadline exceeded")
    );
    assert!(!error.is_certainly_aborted());
    let id = JobId::new("backup").unwrap();
    let conflict = CoordError::job_conflict(&id, "absent", "revision 4");
    assert!(matches!(&conflict, CoordError::Conflict { key: Key::Job(j), .. } if *j == id));
    assert_eq!(
        conflict.to_string(),
        "conflict on backup: expected absent, found revision 4"
    );
    let node = Key::Node(NodeId::new("n1").unwrap());
    assert_eq!(format!("not found: {node}"), "not found: node n1");
}

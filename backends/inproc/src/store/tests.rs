//! Unit tests of `Store`: bad paths and damaged files give an error that names the file, never a panic.

use std::path::Path;

use super::*;

fn open_err(path: &Path) -> InprocError {
    match Store::open(path) {
        Ok(_) => panic!("opening {} should fail", path.display()),
        Err(e) => e,
    }
}

/// The error's text and its source chain, as a user printing it with `{:#}` would see it.
fn chain(e: &InprocError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[test]
fn a_path_under_a_regular_file_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("plain");
    std::fs::write(&file, b"not a directory").expect("write");
    let path = file.join("campanile.redb");
    let e = open_err(&path);
    assert!(matches!(e, InprocError::Open { .. }), "{e:?}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
}

#[test]
fn a_directory_is_not_a_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = open_err(dir.path());
    assert!(matches!(e, InprocError::Open { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&dir.path().display().to_string()),
        "{e}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("garbage.redb");
    let garbage: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &garbage).expect("write");
    let e = open_err(&path);
    assert!(
        e.to_string().contains(&path.display().to_string()),
        "{}",
        chain(&e)
    );
}

#[test]
fn a_damaged_database_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("damaged.redb");
    drop(Store::open(&path).expect("a new store opens"));
    // Flip bytes in the middle of the file, past the header.
    let mut bytes = std::fs::read(&path).expect("read");
    let len = bytes.len();
    for byte in &mut bytes[len / 2..len / 2 + 512] {
        *byte ^= 0x5a;
    }
    std::fs::write(&path, &bytes).expect("write");
    // Either redb notices (integrity check) or the pages flipped held nothing live; never a panic.
    if let Err(e) = Store::open(&path) {
        assert!(
            e.to_string().contains(&path.display().to_string()),
            "{}",
            chain(&e)
        );
    }
}

#[test]
fn a_store_open_elsewhere_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("locked.redb");
    let _first = Store::open(&path).expect("first open");
    let e = open_err(&path);
    assert!(matches!(e, InprocError::Open { .. }), "{e:?}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
}

#[test]
fn another_format_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("future.redb");
    {
        let db = Database::create(&path).expect("create");
        let txn = db.begin_write().expect("begin");
        txn.open_table(META)
            .expect("meta")
            .insert(FORMAT, b"2".as_slice())
            .expect("insert");
        txn.commit().expect("commit");
    }
    let e = open_err(&path);
    assert!(
        matches!(
            e,
            InprocError::UnsupportedFormat {
                found: 2,
                supported: FORMAT_VERSION,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
}

#[test]
fn an_undecodable_value_names_the_table_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad-json.redb");
    drop(Store::open(&path).expect("a new store opens"));
    {
        let db = Database::create(&path).expect("reopen with redb");
        let txn = db.begin_write().expect("begin");
        txn.open_table(JOBS)
            .expect("jobs")
            .insert("nightly", b"{not json".as_slice())
            .expect("insert");
        txn.commit().expect("commit");
    }
    let e = open_err(&path);
    match &e {
        InprocError::Corrupt { table, key, .. } => {
            assert_eq!((*table, key.as_str()), (name::JOBS, "nightly"));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
}

#[test]
fn a_key_that_is_not_a_job_id_is_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad-key.redb");
    drop(Store::open(&path).expect("a new store opens"));
    {
        let db = Database::create(&path).expect("reopen with redb");
        let txn = db.begin_write().expect("begin");
        txn.open_table(CLAIMS)
            .expect("claims")
            .insert("no spaces allowed", b"{}".as_slice())
            .expect("insert");
        txn.commit().expect("commit");
    }
    let e = open_err(&path);
    assert!(
        matches!(&e, InprocError::Corrupt { table, .. } if *table == name::CLAIMS),
        "{e:?}"
    );
}

#[test]
fn volatile_changes_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("volatile.redb");
    let (store, _) = Store::open(&path).expect("open");
    let changes = [
        Change::EndSession(campanile::coordinator::SessionId(1)),
        Change::Leader(None),
    ];
    store.write(&changes, None).expect("nothing to write");
}

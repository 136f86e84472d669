//! The etcd v3 gRPC client code in `vendor/etcd-client/src/rpc/pb/` is generated from the `.proto` files beside
//! it and committed, so that building the workspace needs no `protoc`. This test regenerates it with a
//! pure-Rust protobuf compiler (`protox`) and the same code generator etcd-client's own build script uses
//! (`tonic-prost-build`, client only), and fails when the committed files differ: a changed `.proto` file or a
//! generator upgrade cannot slip in without its code.
//!
//! To regenerate after such a change: `CAMPANILE_REGENERATE=1 cargo test -p campanile-etcd --test generated_code`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The `.proto` files etcd-client compiles, relative to `vendor/etcd-client/proto`.
const PROTOS: &[&str] = &[
    "etcd/api/authpb/auth.proto",
    "etcd/api/etcdserverpb/rpc.proto",
    "etcd/api/mvccpb/kv.proto",
    "etcd/server/etcdserver/api/v3election/v3electionpb/v3election.proto",
    "etcd/server/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
];

fn vendored() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vendor/etcd-client")
}

/// The `.rs` files of a directory, by name.
fn rust_files(dir: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
    {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|ext| ext == "rs") {
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            files.insert(name, text);
        }
    }
    files
}

/// Generates the client code into a fresh directory and returns its files.
fn generate() -> BTreeMap<String, String> {
    let proto_root = vendored().join("proto");
    let files = PROTOS
        .iter()
        .map(|p| proto_root.join(p))
        .collect::<Vec<_>>();
    let descriptors =
        protox::compile(&files, [&proto_root]).expect("the vendored .proto files compile");
    let out = tempfile::tempdir().expect("temporary directory");
    tonic_prost_build::configure()
        .build_server(false)
        .emit_rerun_if_changed(false)
        .out_dir(out.path())
        .compile_fds(descriptors)
        .expect("code generation succeeds");
    rust_files(out.path())
}

#[test]
fn committed_etcd_grpc_code_matches_its_protos() {
    let generated = generate();
    // The modules etcd-client includes must all be there (a generator that silently dropped one would
    // otherwise "match" a directory that lost it too).
    for module in [
        "authpb.rs",
        "etcdserverpb.rs",
        "mvccpb.rs",
        "v3electionpb.rs",
        "v3lockpb.rs",
    ] {
        assert!(
            generated.contains_key(module),
            "the generator produced no {module}: {:?}",
            generated.keys()
        );
    }
    let dir = vendored().join("src/rpc/pb");
    if std::env::var_os("CAMPANILE_REGENERATE").is_some() {
        for stale in rust_files(&dir)
            .keys()
            .filter(|name| !generated.contains_key(*name))
        {
            std::fs::remove_file(dir.join(stale)).expect("remove a stale generated file");
        }
        for (name, text) in &generated {
            std::fs::write(dir.join(name), text).expect("write a generated file");
        }
        return;
    }
    let committed = rust_files(&dir);
    let names = |files: &BTreeMap<String, String>| files.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&committed),
        names(&generated),
        "the files in {} differ from what the protos generate; regenerate with \
         CAMPANILE_REGENERATE=1 cargo test -p campanile-etcd --test generated_code",
        dir.display()
    );
    for (name, text) in &generated {
        assert!(
            committed[name] == *text,
            "{}/{name} differs from what the protos generate; regenerate with \
             CAMPANILE_REGENERATE=1 cargo test -p campanile-etcd --test generated_code",
            dir.display()
        );
    }
}

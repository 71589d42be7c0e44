//! Writes the CRD manifests into `crds/yaml/` and `charts/portcullis/files/crds/`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let targets = [
        root.join("yaml"),
        root.join("../charts/portcullis/files/crds"),
    ];
    let crds = match portcullis_crds::rendered_crds() {
        Ok(crds) => crds,
        Err(e) => {
            eprintln!("crdgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    for dir in &targets {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("crdgen: cannot create {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        for (file, text) in &crds {
            let path = dir.join(file);
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("crdgen: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            println!("wrote {}", path.display());
        }
    }
    ExitCode::SUCCESS
}

//! `catalogue tls ca` and `catalogue tls cert`: make a cluster CA and node
//! certificates for peer links, so an operator needs no outside tools.
//!
//! ```sh
//! catalogue tls ca   --out /etc/catalogue/ca                 # ca.pem, ca.key
//! catalogue tls cert --ca /etc/catalogue/ca --name node-a --out /etc/catalogue/tls
//! #                                                        # node-a.pem, node-a.key
//! catalogue tls cert --ca ... --name node-a --cluster prod --out ...
//! #     also names xlReg cluster prod (URI SAN catalogue://cluster/prod)
//! ```
//!
//! A node that forms its cluster through xlReg needs `--cluster NAME` (its
//! `xlreg.cluster.name`): its peers that know it only from the registry
//! link to it only if its certificate names the cluster.
//!
//! Keys are written with mode 0600 (directories created 0700); existing
//! files are left alone unless `--force` is given. Exit status 2 for bad
//! arguments (a name that cannot be a node name, zero days, files already
//! there, an unusable CA directory), 1 when writing or OpenSSL fails.

use std::{path::PathBuf, time::Duration};

use catalogue_actors::tls::{
    CertError, CertificateAuthority, Overwrite, PemError, PemPaths, cluster_uri,
};
use clap::Subcommand;

use super::Exit;

/// Seconds in a day.
const DAY: u64 = 24 * 60 * 60;

/// `catalogue tls` subcommands.
#[derive(Debug, Subcommand)]
pub enum TlsAction {
    /// Create a cluster CA: DIR/ca.pem (give it to every node as `tls.ca`)
    /// and DIR/ca.key (keep it off the nodes). Valid 10 years.
    Ca {
        /// Directory to write to (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The CA's name (its certificate's common name).
        #[arg(long, value_name = "NAME", default_value = "catalogue-ca")]
        name: String,
        /// Replace ca.pem and ca.key if they exist.
        #[arg(long)]
        force: bool,
    },
    /// Issue a node certificate signed by the CA in --ca: DIR/NODE.pem
    /// (`tls.cert`) and DIR/NODE.key (`tls.key`), for both server and
    /// client authentication, naming NODE as CN and DNS subjectAltName,
    /// and each --cluster as URI subjectAltName catalogue://cluster/NAME.
    Cert {
        /// Directory holding ca.pem and ca.key.
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The node's name, as in its `node.name` setting.
        #[arg(long, value_name = "NODE")]
        name: String,
        /// Directory to write to (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// xlReg cluster the node may join (its `xlreg.cluster.name`);
        /// repeatable. Members known only from the registry need it.
        #[arg(long = "cluster", value_name = "NAME")]
        clusters: Vec<String>,
        /// Validity in days.
        #[arg(long, value_name = "N", default_value_t = 365)]
        days: u32,
        /// Replace NODE.pem and NODE.key if they exist.
        #[arg(long)]
        force: bool,
    },
}

/// Runs a tls subcommand.
pub fn run(action: &TlsAction) -> Exit {
    let result = match action {
        TlsAction::Ca { out, name, force } => make_ca(out, name, overwrite(*force)),
        TlsAction::Cert {
            ca,
            name,
            out,
            clusters,
            days,
            force,
        } => make_cert(ca, name, out, clusters, *days, overwrite(*force)),
    };
    match result {
        Ok(()) => Exit::Ok,
        Err(e @ CertError::AlreadyExists { .. }) => {
            eprintln!("error: {e} (--force replaces it)");
            exit_for(&e)
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit_for(&e)
        }
    }
}

fn overwrite(force: bool) -> Overwrite {
    if force {
        Overwrite::Replace
    } else {
        Overwrite::Refuse
    }
}

fn make_ca(out: &std::path::Path, name: &str, overwrite: Overwrite) -> Result<(), CertError> {
    let ca = CertificateAuthority::generate(name)?;
    let written = ca.write_to_dir(out, overwrite)?;
    println!(
        "created CA {name:?}, valid until {}",
        ca.certificate().not_after()
    );
    print_written(
        &written,
        "CA certificate; set tls.ca to it on every node",
        "CA private key, mode 0600; keep it off the nodes",
    );
    Ok(())
}

fn make_cert(
    ca_dir: &std::path::Path,
    name: &str,
    out: &std::path::Path,
    clusters: &[String],
    days: u32,
    overwrite: Overwrite,
) -> Result<(), CertError> {
    if days == 0 {
        return Err(CertError::InvalidValidity(
            "--days must be at least 1".into(),
        ));
    }
    let validity = Duration::from_secs(u64::from(days) * DAY);
    let ca = CertificateAuthority::load_dir(ca_dir)?;
    if ca.expires_within(validity)? {
        eprintln!(
            "warning: the CA expires on {}, before this certificate; the certificate stops working then",
            ca.certificate().not_after()
        );
    }
    let node = ca.issue_for_clusters(name, validity, clusters)?;
    let written = node.write_to_dir(out, overwrite)?;
    println!("issued certificate for node {name:?}, valid {days} days");
    for cluster in clusters {
        println!(
            "  naming xlReg cluster {cluster:?} ({})",
            cluster_uri(cluster)
        );
    }
    print_written(
        &written,
        "node certificate; set tls.cert to it",
        "private key, mode 0600; set tls.key to it",
    );
    Ok(())
}

fn print_written(written: &PemPaths, cert_note: &str, key_note: &str) {
    println!("wrote {} ({cert_note})", written.cert.display());
    println!("wrote {} ({key_note})", written.key.display());
}

/// Bad arguments are configuration errors (2); the rest are failures (1).
fn exit_for(e: &CertError) -> Exit {
    match e {
        CertError::InvalidName { .. }
        | CertError::InvalidCaName { .. }
        | CertError::InvalidValidity(_)
        | CertError::AlreadyExists { .. }
        | CertError::Pem(
            PemError::Missing { .. } | PemError::NotPem { .. } | PemError::KeyMismatch { .. },
        ) => Exit::Config,
        CertError::Pem(PemError::Read { .. })
        | CertError::OpenSsl { .. }
        | CertError::Write { .. } => Exit::Failure,
    }
}

//! One `GetCluster` answered by a real `catalogue serve` returns every
//! member of a 64-member cluster at the largest sizes the registry accepts:
//! 4096-bit keys, 255-byte names, two 255-byte endpoints (about 2 KB per
//! token, so a reply cut at the old 64 KiB held 30 of them), to a v2 and a
//! v1 client (docs/XLREG.md §7).

use anyhow::{Context, Result, ensure};
use catalogue_actors::xlreg::{
    ClientOptions, ClusterRef, Identity, PrivateKey, PublicKey, RegistryClient, Version,
};
use catalogue_integration_tests::{Cli, DEADLINE, Daemon, runtime};

fn long(i: usize, c: &str) -> String {
    format!("{i:02}{}", c.repeat(253))
}

#[test]
fn one_get_cluster_returns_all_64_members_with_4096_bit_keys() -> Result<()> {
    let data = tempfile::tempdir()?;
    let mut daemon = Daemon::builder()
        .set("node.data_dir", &data.path().display().to_string())
        .xlreg_registry()
        // 66 sessions from one loopback address.
        .set("xlreg.sessions_per_source", "0")
        .set("xlreg.max_connections_per_source", "0")
        .start()?;
    let line = daemon.wait_log(DEADLINE, |l| l["message"] == "xlReg registry listening")?;
    let addr = line["address"].as_str().context("address")?.to_string();
    let pem = Cli::new([
        "xlreg",
        "pubkey",
        "--data-dir",
        &data.path().display().to_string(),
    ])
    .output(DEADLINE)?;
    ensure!(pem.code == 0, "xlreg pubkey: {}", pem.stderr);
    let server_key = PublicKey::from_pem(pem.stdout.as_bytes())?;

    let rt = runtime()?;
    rt.block_on(async {
        let (sig, comms) = tokio::task::spawn_blocking(|| {
            Ok::<_, anyhow::Error>((PrivateKey::generate(4096)?, PrivateKey::generate(4096)?))
        })
        .await??;
        let mut creator = RegistryClient::connect(&addr, &server_key).await?;
        let mut me = Identity::ephemeral("creator", sig.clone(), comms.clone());
        creator.register(&mut me, &[]).await?;
        let cluster = long(99, "k");
        creator.create(&cluster, 64, 2).await?;
        for i in 0..64 {
            let mut client = RegistryClient::connect(&addr, &server_key).await?;
            let mut member = Identity::ephemeral(&long(i, "m"), sig.clone(), comms.clone());
            client
                .register(&mut member, &[long(i, "a"), long(i, "b")])
                .await?;
            client.join(&cluster).await?;
            client.bye().await?;
        }
        let by_name = ClusterRef {
            id: None,
            name: Some(cluster.clone()),
        };
        let all = creator.get_cluster(&by_name, None).await?;
        ensure!(all.which == u64::MAX, "which = {:#x}", all.which);
        ensure!(all.members.len() == 64, "{} members", all.members.len());
        for (i, m) in all.members.iter().enumerate() {
            ensure!(m.name == long(i, "m"), "member {i} is {}", m.name);
        }
        creator.bye().await?;

        let v1 = ClientOptions {
            version: Version::V1,
            min_version: Version::V1,
            ..ClientOptions::default()
        };
        let mut old = RegistryClient::connect_with(&addr, &server_key, &v1).await?;
        ensure!(old.version() == Version::V1, "a v1 session");
        let mut me = Identity::ephemeral("old", sig, comms);
        old.register(&mut me, &[]).await?;
        let all = old.get_cluster(&by_name, None).await?;
        ensure!(all.which == u64::MAX, "v1: which = {:#x}", all.which);
        ensure!(all.members.len() == 64, "v1: {} members", all.members.len());
        old.bye().await?;
        Ok(())
    })
}

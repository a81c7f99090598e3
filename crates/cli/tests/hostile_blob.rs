//! Providers whose `/ferry/blob/1` answers are malformed on purpose
//! (`hostile_peer blob-*`), against a real `ferry get`: the node must stay up,
//! drop the provider with a log line saying so, and finish the download from
//! the honest ones.

use ferry_testkit::hostile;

use ferry_node::control::types::GetResult;
use ferry_testkit::harness::{Node, random_bytes, wait_connected};
use hostile::start_hostile;

#[test]
fn a_provider_claiming_groups_its_bitfield_lacks_is_dropped_and_the_node_lives() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("payload.bin");
    let bytes = random_bytes("hostile-blob", 3 << 20);
    std::fs::write(&file, &bytes).unwrap();
    let honest = Node::start("honest");
    honest
        .ferry(&["share", file.to_str().unwrap(), "--json"])
        .ok();
    let liar = start_hostile(&["blob-bad-bitfield", file.to_str().unwrap()]);
    let leecher = Node::start("leecher");
    leecher.ferry(&["connect", &honest.addr()]).ok();
    wait_connected(&leecher, &honest, &honest.id().peer_id);

    // The ticket names the liar as the provider: it is asked first.
    let output = work.path().join("fetched.bin");
    let run = leecher.ferry(&[
        "get",
        &liar.announced.ticket,
        "-o",
        output.to_str().unwrap(),
        "--json",
    ]);

    let alive = leecher.ferry(&["id", "--json"]);
    assert!(
        alive.status.success(),
        "the node died from a provider's answer: {alive:#?}\nits log:\n{}",
        leecher.log()
    );
    let result: GetResult = run.ok().json();
    assert_eq!(std::fs::read(&output).unwrap(), bytes);
    let dropped: Vec<String> = leecher
        .log()
        .lines()
        .filter(|l| l.contains("dropping provider") && l.contains(&liar.announced.peer_id))
        .map(str::to_owned)
        .collect();
    assert!(
        !dropped.is_empty(),
        "the node's log says it dropped the liar:\n{}",
        leecher.log()
    );
    println!("{}", dropped[0]);
    let liar_entry = result
        .providers
        .iter()
        .find(|p| p.peer_id == liar.announced.peer_id);
    assert!(
        liar_entry.is_none_or(|p| p.dropped && p.bytes == 0),
        "the liar delivered nothing and is listed as dropped: {:#?}",
        result.providers
    );
}

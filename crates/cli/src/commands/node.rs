//! Who am I, who is around, reach a peer, which channels: `ferry id`, `ferry
//! peers`, `ferry connect`, `ferry find`, `ferry nat`, `ferry channels`.

use ferry_node::control::types::{
    ChannelInfo, ConnectReply, ConnectRequest, FindReply, FindRequest, IdInfo, NatInfo, PeerInfo,
};

use super::print;
use crate::client::Client;
use crate::output;

pub(super) fn id(client: &Client, json: bool) -> anyhow::Result<()> {
    let id: IdInfo = client.get("/v1/id")?;
    print(json, &id, || output::id_text(&id))
}

pub(super) fn peers(client: &Client, json: bool) -> anyhow::Result<()> {
    let peers: Vec<PeerInfo> = client.get("/v1/peers")?;
    print(json, &peers, || output::peers_table(&peers))
}

pub(super) fn connect(client: &Client, addr: &str, json: bool) -> anyhow::Result<()> {
    let reply: ConnectReply = client.post(
        "/v1/connect",
        &ConnectRequest {
            addr: addr.to_owned(),
        },
    )?;
    print(json, &reply, || output::connect_line(&reply))
}

pub(super) fn find(client: &Client, peer_id: &str, json: bool) -> anyhow::Result<()> {
    let reply: FindReply = client.post(
        "/v1/find",
        &FindRequest {
            peer_id: peer_id.trim().to_owned(),
        },
    )?;
    print(json, &reply, || output::find_text(&reply))
}

pub(super) fn nat(client: &Client, json: bool) -> anyhow::Result<()> {
    let nat: NatInfo = client.get("/v1/nat")?;
    print(json, &nat, || output::nat_text(&nat))
}

pub(super) fn channels(client: &Client, json: bool) -> anyhow::Result<()> {
    let channels: Vec<ChannelInfo> = client.get("/v1/channels")?;
    print(json, &channels, || output::channels_table(&channels))
}

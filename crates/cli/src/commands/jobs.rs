//! Transfers: `ferry jobs` lists them with their progress, `ferry jobs cancel`
//! stops a download.

use ferry_node::control::types::{CancelRequest, JobStatus};

use super::print;
use crate::args::{JobsArgs, JobsCommand};
use crate::client::Client;
use crate::output;

pub(super) fn run(client: &Client, args: JobsArgs) -> anyhow::Result<()> {
    match args.command {
        None => {
            let jobs: Vec<JobStatus> = client.get("/v1/jobs")?;
            print(args.output.json, &jobs, || output::jobs_table(&jobs))
        }
        Some(JobsCommand::Cancel(cancel)) => {
            let status: JobStatus = client.post(
                &format!("/v1/jobs/{}/cancel", cancel.job),
                &CancelRequest { keep: cancel.keep },
            )?;
            print(cancel.output.json || args.output.json, &status, || {
                output::cancelled_line(&status, cancel.keep)
            })
        }
    }
}

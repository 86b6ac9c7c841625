//! `remoteagentctl logs [AGENT] [--session ID] [-n N] [-f]`: a session's
//! local log; with `-f`, new lines as they are written, until Ctrl-C.

use remoteagent_proto::control::{LogsRequest, Request, Response};

use super::{print_json, print_line, shown};
use crate::client::Client;
use crate::error::CliError;

pub struct LogsArgs {
    pub agent: Option<String>,
    pub session: Option<String>,
    pub lines: usize,
    pub follow: bool,
    pub json: bool,
}

pub async fn run(client: &mut Client, args: LogsArgs) -> Result<(), CliError> {
    client
        .send(Request::Logs(LogsRequest {
            agent: args.agent,
            session: args.session,
            lines: args.lines,
            follow: args.follow,
        }))
        .await?;
    let stream = async {
        loop {
            let reply = client.next().await?;
            let last = reply.is_last();
            match reply.data {
                // The log holds remote text (the prompt, runner output).
                Some(Response::LogLine { line, .. }) if !args.json => print_line(&shown(&line))?,
                Some(data) => print_json(&data)?,
                None => {}
            }
            if last {
                return Ok(());
            }
        }
    };
    tokio::select! {
        result = stream => result,
        // Ctrl-C ends `-f`; closing the connection tells the daemon to stop.
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

// SPDX-License-Identifier: Apache-2.0
// metering-emulator binary: parses flags, starts the emulator, prints the port, waits for a signal.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use metering_emulator::{CredentialConfig, Emulator, EmulatorConfig};

// glibc malloc spends a visible share of each request consolidating bins; mimalloc does not.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
metering-emulator: a strict local stand-in for the AWS Marketplace Metering Service

USAGE: metering-emulator [OPTIONS]

OPTIONS:
  --config FILE.json          EmulatorConfig as JSON (flags below override it)
  --port N                    port on 127.0.0.1 (0 = pick a free one; default 0)
  --region R                  region requests must be signed for (default us-east-1)
  --state-dir DIR             keep ledger and de-duplication tables in DIR across restarts
  --access-key-id ID          add an identity (with --secret-access-key [--session-token])
  --secret-access-key SECRET
  --session-token TOKEN
  --max-past-secs N           oldest accepted usage timestamp (default 21600)
  --max-future-secs N         newest accepted usage timestamp (default 300)
  --request-log-limit N       requests kept in the request log (default 10000)
  -h, --help                  show this help
  -V, --version               show the version

When listening, prints `METERING_EMULATOR_PORT=<n>` on stdout. Exits 0 on SIGTERM/SIGINT.";

fn parse_args(args: &[String]) -> Result<EmulatorConfig, String> {
    let value = |i: usize| -> Result<&String, String> {
        args.get(i + 1)
            .ok_or_else(|| format!("{} needs a value", args[i]))
    };
    // The config file first, so flags override it wherever they appear.
    let mut config = EmulatorConfig::default();
    for (i, a) in args.iter().enumerate() {
        if a == "--config" {
            let path = value(i)?;
            config = EmulatorConfig::from_json_file(path)
                .map_err(|e| format!("cannot read config {path}: {e}"))?;
        }
    }
    let num = |i: usize| -> Result<i64, String> {
        let v = value(i)?;
        v.parse()
            .map_err(|_| format!("{} expects a number, got {v}", args[i]))
    };
    let (mut ak, mut sk, mut token) = (None, None, None);
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "--config" => {}
            "--port" => {
                config.port = value(i)?
                    .parse()
                    .map_err(|_| format!("--port expects a port number, got {}", args[i + 1]))?
            }
            "--region" => config.region = value(i)?.clone(),
            "--state-dir" => config.state_dir = Some(PathBuf::from(value(i)?)),
            "--access-key-id" => ak = Some(value(i)?.clone()),
            "--secret-access-key" => sk = Some(value(i)?.clone()),
            "--session-token" => token = Some(value(i)?.clone()),
            "--max-past-secs" => config.max_past_secs = num(i)?,
            "--max-future-secs" => config.max_future_secs = num(i)?,
            "--request-log-limit" => config.request_log_limit = num(i)?.max(0) as usize,
            _ => return Err(format!("unknown argument {a}\n\n{USAGE}")),
        }
        i += 2;
    }
    match (ak, sk) {
        (Some(access_key_id), Some(secret_access_key)) => {
            config
                .credentials
                .retain(|c| c.access_key_id != access_key_id);
            config.credentials.push(CredentialConfig {
                access_key_id,
                secret_access_key,
                session_token: token,
                account_id: None,
                expires_at: None,
                instance: None,
            });
        }
        (None, None) if token.is_none() => {}
        _ => return Err("--access-key-id and --secret-access-key go together".into()),
    }
    Ok(config)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "-V" || a == "--version") {
        println!("metering-emulator {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let config = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("metering-emulator: {e}");
            return ExitCode::from(2);
        }
    };
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("metering-emulator: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: EmulatorConfig) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Install the handlers before announcing the port, so an early SIGTERM is clean too.
    let (mut term, mut int) = {
        let _guard = rt.enter();
        (
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        )
    };
    let emulator = Emulator::start(config)?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "METERING_EMULATOR_PORT={}", emulator.port())?;
        out.flush()?;
    }
    eprintln!(
        "metering-emulator listening on {} (region {})",
        emulator.endpoint(),
        emulator.config().region
    );
    rt.block_on(async {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    });
    emulator.shutdown();
    eprintln!("metering-emulator: shut down");
    Ok(())
}

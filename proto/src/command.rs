//! A command as a probe: run it with no input and its output discarded, killed if the
//! caller stops waiting; it passes when it exits 0. Shared by faultctl's probes and
//! faultd's health guard.

/// Runs `argv` (program and arguments); `Err` says why it did not exit 0.
pub async fn succeeds(argv: &[String]) -> Result<(), String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("an empty command".into());
    };
    let st = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{program} exited with {st}"))
    }
}

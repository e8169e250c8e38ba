//! bench_serving flags that `loupe bench` does not implement. They are parsed (hidden) so
//! that a copied command line gets a reason instead of clap's "unexpected argument", and
//! refused before anything runs: a flag silently dropped would report a benchmark nobody ran.

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

/// (flag, why it is refused).
const REFUSED: &[(&str, &str)] = &[
    ("rust-client", "loupe bench is itself a native client"),
    ("rust-worker-threads", "loupe bench sizes its own runtime"),
];

/// The refused flags present on the command line.
#[derive(Debug, Clone, Default)]
pub struct RefusedFlags {
    pub given: Vec<&'static str>,
}

impl RefusedFlags {
    /// An error naming every refused flag given, with its reason.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.given.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = self
            .given
            .iter()
            .map(|flag| {
                let why = REFUSED
                    .iter()
                    .find(|(f, _)| f == flag)
                    .map_or("", |(_, w)| *w);
                format!("--{flag}: {why}")
            })
            .collect();
        anyhow::bail!(
            "loupe bench does not implement these bench_serving flags (remove them, or use \
             bench_serving for this run):\n  {}",
            lines.join("\n  ")
        )
    }
}

impl FromArgMatches for RefusedFlags {
    fn from_arg_matches(m: &ArgMatches) -> std::result::Result<Self, clap::Error> {
        let given = REFUSED
            .iter()
            .map(|(f, _)| *f)
            .filter(|f| m.value_source(f) == Some(ValueSource::CommandLine))
            .collect();
        Ok(RefusedFlags { given })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> std::result::Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for RefusedFlags {
    fn augment_args(cmd: Command) -> Command {
        REFUSED.iter().fold(cmd, |cmd, (flag, _)| {
            cmd.arg(
                Arg::new(*flag)
                    .long(*flag)
                    .hide(true)
                    .num_args(0..)
                    .action(ArgAction::Append),
            )
        })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        refused: RefusedFlags,
    }

    #[test]
    fn refused_flags_are_named_with_their_reason() {
        let cli =
            Cli::try_parse_from(["x", "--rust-client", "--rust-worker-threads", "4"]).unwrap();
        let err = cli.refused.check().unwrap_err().to_string();
        assert!(
            err.contains("--rust-client: loupe bench is itself"),
            "{err}"
        );
        assert!(
            err.contains("--rust-worker-threads: loupe bench sizes"),
            "{err}"
        );
        let none = Cli::try_parse_from(["x"]).unwrap();
        assert!(none.refused.check().is_ok());
    }
}

//! `shop completions` and `shop man`: generated from the clap definition.

use clap::CommandFactory;

use super::Context;
use crate::cli::Cli;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "For bash: `shop completions bash > ~/.local/share/bash-completion/completions/shop`"
)]
pub struct Args {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, "shop", &mut out);
    context.output.data(String::from_utf8_lossy(&out))?;
    Ok(())
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Install: `shop man > /usr/local/share/man/man1/shop.1`")]
pub struct ManArgs {}

pub fn man(context: &Context, _args: ManArgs) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    context.output.data(String::from_utf8_lossy(&out))?;
    Ok(())
}

#!/usr/bin/env node
import { firstLine, UsageError } from './config/usageError.js';

const HELP = `Usage: imds-cache-proxy <command> [options]

A local IMDSv2-compatible caching proxy for EC2 instance-role credentials.

Commands:
  serve                 serve IMDS to local SDKs from a credential cache
  credential-process    print credentials from a running proxy for ~/.aws/config
  status                a running proxy at a glance (--watch, --json); a health check too
  simulate              a faithful IMDS with throttling and fault injection
  loadtest              load an IMDS (or the proxy) like thousands of fresh SDK processes
  demo                  the throttling problem and its fix, side by side, on loopback
  --help, --version

Run "imds-cache-proxy <command> --help" for a command's options.
`;

type Command = (argv: string[]) => Promise<number>;

// Each command's modules load only when it runs: the AWS CLI starts credential-process on
// every invocation, and it must not pay for hono, pino and prom-client (serve) or the
// simulator and load generator. test/cli/importGraph.test.ts holds this.
const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => {
    const { runServeCommand } = await import('./commands/serve.js');
    return (argv) => runServeCommand(argv);
  },
  'credential-process': async () => (await import('./commands/credentialProcess.js')).runCredentialProcessCommand,
  status: async () => (await import('./commands/status.js')).runStatusCommand,
  simulate: async () => (await import('./commands/simulate.js')).runSimulateCommand,
  loadtest: async () => (await import('./commands/loadtest.js')).runLoadtestCommand,
  demo: async () => (await import('./commands/demo.js')).runDemo,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(HELP);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`${(await import('./runtime/version.js')).VERSION}\n`);
    return 0;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (load === undefined) throw new UsageError(`unknown command "${name}" (expected one of: ${Object.keys(COMMANDS).join(', ')})`);
  return (await load())(rest);
}

// Fail loudly, never silently: an unexpected error is a bug, and the process must not
// limp on with a half-working cache.
process.on('unhandledRejection', (reason) => {
  process.stderr.write(`imds-cache-proxy: unhandled rejection: ${firstLine(reason)}\n`);
  process.exit(1);
});
process.on('uncaughtException', (error) => {
  process.stderr.write(`imds-cache-proxy: uncaught exception: ${firstLine(error)}\n`);
  process.exit(1);
});

// Started over IPC by a Node parent (the demo, the bench): stop when it goes. Loaded only then.
if (process.channel !== undefined) void import('./child/parentWatch.js').then((m) => m.stopWhenParentGoes());
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`imds-cache-proxy: ${error.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`imds-cache-proxy: ${firstLine(error)}\n`);
    process.exitCode = 1;
  },
);

/**
 * A process started over IPC by a Node parent (the demo, the benchmark) stops when that
 * parent goes away, however it died: SIGKILL included, since the kernel closes the IPC pipe.
 * Launched any other way (a shell, systemd, a container) there is no channel and this does
 * nothing.
 */
export function stopWhenParentGoes(): void {
  if (process.channel === undefined) return;
  // The channel is a signal, not work: it must not keep an otherwise finished process alive.
  process.channel.unref();
  const stop = () => process.kill(process.pid, 'SIGTERM');
  // The parent may already be gone by the time this runs (it is loaded lazily).
  if (!process.connected) stop();
  else process.once('disconnect', stop);
}

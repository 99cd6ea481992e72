import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { parseServeConfig } from '../../src/config/proxyConfig.js';
import { silentLogger } from '../../src/runtime/log.js';
import { SHUTDOWN_GRACE_MS, startProxy, type RunningProxy } from '../../src/server/proxy.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Doc = any;

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DIR = `${ROOT}deploy/kubernetes/`;
const FILES = readdirSync(DIR).filter((f) => f.endsWith('.yaml'));
const DOCS: { file: string; doc: Doc }[] = FILES.flatMap((file) =>
  parseAllDocuments(readFileSync(DIR + file, 'utf8')).map((d) => {
    expect(d.errors, file).toEqual([]);
    return { file, doc: d.toJS() as Doc };
  }),
);
const only = (kind: string): Doc => {
  const found = DOCS.filter((d) => d.doc?.kind === kind);
  expect(found, kind).toHaveLength(1);
  return found[0]!.doc;
};

const daemonSet = only('DaemonSet');
const configMap = only('ConfigMap');
const svc = only('Service');
const monitor = only('ServiceMonitor');
const pod = daemonSet.spec.template.spec;
const proxyContainer = pod.containers.find((c: Doc) => c.name === 'imds-cache-proxy');
const initContainer = pod.initContainers.find((c: Doc) => c.name === 'install-redirect');
const allContainers: Doc[] = [...pod.initContainers, ...pod.containers];
const VERSION = (JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version: string }).version;

/** A node the manifests land on. */
const HOST_IP = '10.0.3.7';

/** A container's environment as the kubelet builds it: envFrom, then env with $(VAR) expanded. */
function containerEnv(container: Doc): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    expect(from.configMapRef?.name).toBe(configMap.metadata.name);
    Object.assign(env, configMap.data);
  }
  for (const e of container.env ?? []) {
    if (e.valueFrom) {
      expect(e.valueFrom.fieldRef?.fieldPath, e.name).toBe('status.hostIP');
      env[e.name] = HOST_IP;
    } else {
      env[e.name] = expand(String(e.value), env);
    }
  }
  return env;
}
function expand(value: string, env: Record<string, string>): string {
  return value.replace(/\$\(([A-Z_][A-Z0-9_]*)\)/g, (_, name: string) => {
    expect(env, `$(${name}) is defined before use`).toHaveProperty(name);
    return env[name]!;
  });
}
const containerPort = (container: Doc, name: string): number => {
  const port = container.ports?.find((p: Doc) => p.name === name);
  expect(port, `port ${name}`).toBeDefined();
  return port.containerPort;
};
const proxyConfig = () => {
  const [command, ...argv] = proxyContainer.args as string[];
  expect(command).toBe('serve');
  return parseServeConfig(argv, containerEnv(proxyContainer));
};

describe('deploy/kubernetes', () => {
  it('every manifest parses, names itself, and is listed in kustomization.yaml', () => {
    const kustomization = DOCS.find((d) => d.file === 'kustomization.yaml')!.doc;
    expect([...kustomization.resources].sort()).toEqual(FILES.filter((f) => f !== 'kustomization.yaml').sort());
    for (const { file, doc } of DOCS.filter((d) => d.file !== 'kustomization.yaml')) {
      expect(doc.apiVersion, file).toBeTruthy();
      expect(doc.kind, file).toBeTruthy();
      expect(doc.metadata?.name, file).toBeTruthy();
      if (doc.kind !== 'Namespace') expect(doc.metadata.namespace, file).toBe('imds-cache-proxy');
    }
  });

  it('DaemonSet: host network, one pod per node everywhere, its selector matches its pods', () => {
    expect(pod.hostNetwork).toBe(true);
    expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(pod.tolerations).toContainEqual({ operator: 'Exists' });
    for (const [k, v] of Object.entries(daemonSet.spec.selector.matchLabels)) {
      expect(daemonSet.spec.template.metadata.labels[k]).toBe(v);
    }
    expect(pod.automountServiceAccountToken).toBe(false);
  });

  it('rolling updates: no surge (a second pod cannot listen on the node\'s port), a readiness hold, a grace longer than the proxy\'s stop; the README says the same', () => {
    const strategy = daemonSet.spec.updateStrategy;
    expect(strategy.type).toBe('RollingUpdate');
    // Host network plus declared ports: a surge pod would be unschedulable, or fail to bind.
    expect(pod.hostNetwork).toBe(true);
    expect(strategy.rollingUpdate.maxSurge ?? 0).toBe(0);
    expect(String(strategy.rollingUpdate.maxUnavailable)).toMatch(/^([1-9]\d*|[1-9]\d?%)$/);
    expect(daemonSet.spec.minReadySeconds).toBeGreaterThan(0);
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(SHUTDOWN_GRACE_MS);
    const readme = readFileSync(`${DIR}README.md`, 'utf8');
    expect(readme).toContain(`\`maxSurge: 0\`, \`maxUnavailable: ${strategy.rollingUpdate.maxUnavailable}\`, \`minReadySeconds: ${daemonSet.spec.minReadySeconds}\``);
    expect(readme).toContain(`\`terminationGracePeriodSeconds: ${pod.terminationGracePeriodSeconds}\``);
    expect(readme).toContain(`bounded stop (${SHUTDOWN_GRACE_MS / 1000} s)`);
  });

  it('the proxy\'s environment is a valid configuration that listens on the node IP, on the declared ports', () => {
    const config = proxyConfig();
    expect(config.listen).toEqual({ host: HOST_IP, port: containerPort(proxyContainer, 'imds') });
    expect(config.metricsListen).toEqual({ host: HOST_IP, port: containerPort(proxyContainer, 'metrics') });
    expect(config.upstream).toBe('http://169.254.169.254');
    expect(config.clientTokens).toBe('required');
    // Not loopback, so an allow-list, which must admit the kubelet's probes from the node itself.
    expect(config.allowCidrs).toContain(`${HOST_IP}/32`);
    expect(config.allowCidrs.length).toBeGreaterThan(1);
    // The warm-start file is on a memory-backed volume, not the (read-only) image.
    const mount = proxyContainer.volumeMounts.find((m: Doc) => config.cacheFile!.startsWith(`${m.mountPath}/`));
    expect(mount, 'cache file on a mounted volume').toBeDefined();
    expect(pod.volumes.find((v: Doc) => v.name === mount.name).emptyDir?.medium).toBe('Memory');
  });

  it('probes point at the proxy\'s liveness and readiness paths on its IMDS port', () => {
    const imdsPort = containerPort(proxyContainer, 'imds');
    const portOf = (probe: Doc) => (typeof probe.httpGet.port === 'number' ? probe.httpGet.port : containerPort(proxyContainer, probe.httpGet.port));
    expect(proxyContainer.livenessProbe.httpGet.path).toBe('/healthz');
    expect(proxyContainer.readinessProbe.httpGet.path).toBe('/readyz');
    expect(portOf(proxyContainer.livenessProbe)).toBe(imdsPort);
    expect(portOf(proxyContainer.readinessProbe)).toBe(imdsPort);
    expect(proxyContainer.livenessProbe.httpGet.scheme ?? 'HTTP').toBe('HTTP');
  });

  describe('the probe paths, against a real proxy on loopback', () => {
    let sim: RunningSimulator;
    let ready: RunningProxy;
    let cold: RunningProxy;
    beforeAll(async () => {
      sim = await startSimulator({ port: 0, controlPort: 0 });
      ready = await startProxy(parseServeConfig(['--listen', '127.0.0.1:0', '--upstream', sim.url], {}), { logger: silentLogger });
      cold = await startProxy(
        parseServeConfig(['--listen', '127.0.0.1:0', '--upstream', 'http://127.0.0.1:9', '--upstream-attempts', '1'], {}),
        { logger: silentLogger },
      );
    });
    afterAll(async () => {
      await Promise.all([ready?.close(), cold?.close()]);
      await sim?.close();
    });

    it('liveness answers 200 whether or not credentials are cached', async () => {
      const path = proxyContainer.livenessProbe.httpGet.path;
      expect((await fetch(`${cold.url}${path}`)).status).toBe(200);
      expect((await fetch(`${ready.url}${path}`)).status).toBe(200);
    });

    it('readiness answers 503 until credentials are cached, then 200', async () => {
      const path = proxyContainer.readinessProbe.httpGet.path;
      expect((await fetch(`${cold.url}${path}`)).status).toBe(503);
      const deadline = Date.now() + 10_000;
      let status = 0;
      while (Date.now() < deadline && (status = (await fetch(`${ready.url}${path}`)).status) !== 200) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(status).toBe(200);
    });
  });

  it('the init container redirects pods to exactly the address and port the proxy listens on', () => {
    const env = containerEnv(initContainer);
    const args = (initContainer.args as string[]).map((a) => expand(a, env));
    expect(args.slice(0, 3)).toEqual(['install', '--mode', 'pods']);
    // Run the script's dry run with the same options: it prints the rules it would install.
    const printed = spawnSync('bash', [`${ROOT}deploy/host/imds-redirect.sh`, 'print', ...args.slice(1)], { encoding: 'utf8' });
    expect(printed.status, printed.stderr).toBe(0);
    const { listen } = proxyConfig();
    expect(printed.stdout).toContain(`-j DNAT --to-destination ${listen.host}:${listen.port}`);
    expect(printed.stdout).toContain(`-d ${listen.host}/32 -p tcp -m tcp --dport ${listen.port} `);
    expect(env.IMDS_REDIRECT_IPTABLES).toMatch(/^iptables(-legacy|-nft)?$/);
    // It shares the node's xtables lock with kube-proxy.
    const lock = initContainer.volumeMounts.find((m: Doc) => m.mountPath === '/run/xtables.lock');
    expect(pod.volumes.find((v: Doc) => v.name === lock.name).hostPath.path).toBe('/run/xtables.lock');
  });

  it('securityContext: every container non-root and locked down, except the redirect\'s NET_ADMIN', () => {
    expect(pod.securityContext.seccompProfile.type).toBe('RuntimeDefault');
    for (const c of allContainers) {
      const sc = c.securityContext;
      expect(sc, c.name).toBeDefined();
      expect(sc.privileged ?? false, c.name).toBe(false);
      expect(sc.allowPrivilegeEscalation, c.name).toBe(false);
      expect(sc.readOnlyRootFilesystem, c.name).toBe(true);
      expect(sc.capabilities.drop, c.name).toEqual(['ALL']);
      if (c === initContainer) {
        expect(sc.capabilities.add).toEqual(['NET_ADMIN', 'NET_RAW']);
      } else {
        expect(sc.runAsNonRoot, c.name).toBe(true);
        expect(sc.runAsUser, c.name).toBeGreaterThan(0);
        expect(sc.capabilities.add ?? [], c.name).toEqual([]);
      }
    }
    expect(pod.containers.every((c: Doc) => c !== initContainer)).toBe(true);
    // Nothing mounts the host's file system but the xtables lock.
    const hostPaths = pod.volumes.filter((v: Doc) => v.hostPath).map((v: Doc) => v.hostPath.path);
    expect(hostPaths).toEqual(['/run/xtables.lock']);
  });

  it('every container has CPU and memory requests and limits', () => {
    for (const c of allContainers) {
      for (const kind of ['requests', 'limits']) {
        expect(c.resources?.[kind]?.cpu, `${c.name} ${kind}.cpu`).toBeTruthy();
        expect(c.resources?.[kind]?.memory, `${c.name} ${kind}.memory`).toBeTruthy();
      }
    }
  });

  it('images are the ones deploy/docker builds, at the package\'s version', () => {
    expect(proxyContainer.image).toBe(`imds-cache-proxy:${VERSION}`);
    expect(initContainer.image).toBe(`imds-cache-proxy-redirect:${VERSION}`);
    // The proxy image runs as uid 1000 (USER 1000:1000): the pod agrees.
    expect(proxyContainer.securityContext.runAsUser).toBe(1000);
  });

  it('Service: headless, selects the proxy pods, and exposes metrics only, never the IMDS port', () => {
    expect(svc.spec.clusterIP).toBe('None');
    for (const [k, v] of Object.entries(svc.spec.selector)) expect(daemonSet.spec.template.metadata.labels[k]).toBe(v);
    expect(svc.spec.ports).toHaveLength(1);
    const [port] = svc.spec.ports;
    expect(port.name).toBe('metrics');
    const target = typeof port.targetPort === 'number' ? port.targetPort : containerPort(proxyContainer, port.targetPort);
    expect(target).toBe(proxyConfig().metricsListen!.port);
    expect(svc.spec.ports.map((p: Doc) => p.port)).not.toContain(proxyConfig().listen.port);
  });

  it('ServiceMonitor: finds the Service, scrapes /metrics on its port, with the job name the alerts expect', () => {
    for (const [k, v] of Object.entries(monitor.spec.selector.matchLabels)) expect(svc.metadata.labels[k]).toBe(v);
    expect(monitor.spec.namespaceSelector.matchNames).toContain(svc.metadata.namespace);
    const [endpoint] = monitor.spec.endpoints;
    expect(svc.spec.ports.map((p: Doc) => p.name)).toContain(endpoint.port);
    expect(endpoint.path).toBe('/metrics');
    // No jobLabel: the job is the Service's name, which deploy/prometheus/alerts.yml matches.
    expect(monitor.spec.jobLabel).toBeUndefined();
    const alerts = readFileSync(`${ROOT}deploy/prometheus/alerts.yml`, 'utf8');
    expect(alerts).toContain(`job="${svc.metadata.name}"`);
  });
});

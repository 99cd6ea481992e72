import { defaultProxyConfig } from '../../src/config/proxyConfig.js';
import { silentLogger } from '../../src/runtime/log.js';
import { startProxy } from '../../src/server/proxy.js';
import { startSimulator } from '../../src/simulator/simulator.js';
import { describeImdsContract } from './imdsContract.js';

describeImdsContract('the proxy, in front of the simulator', async () => {
  const sim = await startSimulator({ port: 0, roles: ['contract-role'] });
  const proxy = await startProxy(
    { ...defaultProxyConfig(), listen: { host: '127.0.0.1', port: 0 }, upstream: sim.url },
    { logger: silentLogger },
  );
  return {
    baseUrl: proxy.url,
    role: 'contract-role',
    close: async () => {
      await proxy.close();
      await sim.close();
    },
  };
});

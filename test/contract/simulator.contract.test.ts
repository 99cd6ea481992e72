import { startSimulator } from '../../src/simulator/simulator.js';
import { describeImdsContract } from './imdsContract.js';

describeImdsContract('the simulator', async () => {
  const sim = await startSimulator({ port: 0, roles: ['contract-role'] });
  return { baseUrl: sim.url, role: 'contract-role', close: () => sim.close() };
});

describeImdsContract(
  'the simulator, IMDSv1 allowed',
  async () => {
    const sim = await startSimulator({ port: 0, roles: ['v1-role'], faults: { httpTokens: 'optional' } });
    return { baseUrl: sim.url, role: 'v1-role', close: () => sim.close() };
  },
  { tokenlessAllowed: true },
);

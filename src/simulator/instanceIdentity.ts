import { randomBytes } from 'node:crypto';

/** The static facts of one simulated instance. */
export interface InstanceIdentity {
  accountId: string;
  region: string;
  availabilityZone: string;
  instanceId: string;
  imageId: string;
  instanceType: string;
  privateIp: string;
  mac: string;
  instanceProfileName: string;
  instanceProfileId: string;
}

export function makeInstanceIdentity(accountId = '123456789012', region = 'eu-west-1'): InstanceIdentity {
  const hex = (bytes: number) => randomBytes(bytes).toString('hex');
  return {
    accountId,
    region,
    availabilityZone: `${region}a`,
    instanceId: `i-${hex(9).slice(0, 17)}`,
    imageId: `ami-${hex(9).slice(0, 17)}`,
    instanceType: 'm6i.large',
    privateIp: '10.0.12.34',
    mac: '0e:12:34:56:78:9a',
    instanceProfileName: 'simulated-instance-profile',
    instanceProfileId: `AIPA${randomBytes(12).toString('hex').toUpperCase().slice(0, 17)}`,
  };
}

export interface MetadataLeaf {
  body: string;
  contentType: string;
}

/** Static metadata leaves and listings, keyed by path under /latest/ (listings end in `/`). */
export function staticMetadata(id: InstanceIdentity, started: string): Map<string, MetadataLeaf> {
  const text = (body: string) => ({ body, contentType: 'text/plain' });
  const document = {
    accountId: id.accountId,
    architecture: 'x86_64',
    availabilityZone: id.availabilityZone,
    imageId: id.imageId,
    instanceId: id.instanceId,
    instanceType: id.instanceType,
    pendingTime: started,
    privateIp: id.privateIp,
    region: id.region,
    version: '2017-09-30',
  };
  return new Map([
    ['meta-data/instance-id', text(id.instanceId)],
    ['meta-data/ami-id', text(id.imageId)],
    ['meta-data/instance-type', text(id.instanceType)],
    ['meta-data/local-ipv4', text(id.privateIp)],
    ['meta-data/mac', text(id.mac)],
    ['meta-data/placement/region', text(id.region)],
    ['meta-data/placement/availability-zone', text(id.availabilityZone)],
    ['meta-data/placement/', text('availability-zone\navailability-zone-id\nregion')],
    ['meta-data/placement/availability-zone-id', text('euw1-az1')],
    ['meta-data/', text('ami-id\niam/\ninstance-id\ninstance-type\nlocal-ipv4\nmac\nplacement/')],
    ['meta-data/iam/', text('info\nsecurity-credentials/')],
    ['', text('dynamic\nmeta-data\nuser-data')],
    ['dynamic/', text('instance-identity/')],
    ['dynamic/instance-identity/', text('document')],
    ['dynamic/instance-identity/document', { body: JSON.stringify(document, null, 2), contentType: 'text/plain' }],
    ['user-data', { body: '#!/bin/sh\necho simulated user-data\n', contentType: 'application/octet-stream' }],
  ]);
}

/**
 * Finds what a path under /latest/ names. Real IMDS redirects a listing asked without its
 * slash, and botocore asks `placement/availability-zone/` with one; answering both forms
 * directly serves clients that do not follow redirects.
 */
export function findMetadata(tree: ReadonlyMap<string, MetadataLeaf>, relativePath: string): MetadataLeaf | undefined {
  return (
    tree.get(relativePath) ??
    (relativePath.endsWith('/') ? tree.get(relativePath.slice(0, -1)) : tree.get(`${relativePath}/`))
  );
}

/**
 * The account that owns the instance profile, from `iam/info`'s InstanceProfileArn
 * (`arn:aws:iam::<account>:instance-profile/<name>`). Role and instance profile live in one
 * account, so this is the AccountId the extended credentials route reports.
 */
export function accountIdFromIamInfo(body: string): string | undefined {
  let info: unknown;
  try {
    info = JSON.parse(body);
  } catch {
    return undefined;
  }
  const arn = (info as { InstanceProfileArn?: unknown } | null)?.InstanceProfileArn;
  if (typeof arn !== 'string') return undefined;
  return /^arn:aws[\w-]*:iam::(\d{12}):instance-profile\//.exec(arn)?.[1];
}

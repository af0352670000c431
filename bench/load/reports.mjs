// Session reports for the load generators, each with its own 5-tuple, cheap to make in bulk.
//
// Report i (0 <= i < 55536 * 150^3) has local 10.10.1.1:<sport> and remote 10.<a>.<b>.<c>:8080,
// every number fixed-width (sport 10000..65535, a/b/c 100..249), so every report's JSON (and
// protobuf) is the same length and a new one is a template with its digits written in place.
// The header picks the `minion` route of the cloud-service VirtualService (examples/rules).

export const AUTHORITY = 'cloud-service.cloud.svc.cluster.local';
const PORTS = 55536;

/** The 5-tuple of report i: local and remote as Envoy writes them. */
export function tuple(i) {
  const q = Math.floor(i / PORTS);
  const a = 100 + (Math.floor(q / 22500) % 150);
  const b = 100 + (Math.floor(q / 150) % 150);
  const c = 100 + (q % 150);
  return { local: `10.10.1.1:${10000 + (i % PORTS)}`, remote: `10.${a}.${b}.${c}:8080` };
}

export function reportObject(i, user = 'minion') {
  const { local, remote } = tuple(i);
  return { direction: 'outbound', local, remote, request: { authority: AUTHORITY, path: '/', method: 'GET', headers: { 'end-user': user } } };
}

/**
 * Makes the bytes of report i from one template: the bytes of report 0 with the offsets of
 * its digit runs, which tuple() keeps at fixed width.
 */
export function templated(encode) {
  const template = encode(0);
  // Offsets of "10000" (sport) and "100.100.100" (remote a.b.c) in the template.
  const sportAt = template.indexOf('1.1:10000') + 4;
  const remoteAt = template.indexOf('10.100.100.100:') + 3;
  if (sportAt < 4 || remoteAt < 3) throw new Error('report template without its digit runs');
  return (i) => {
    const out = Buffer.allocUnsafe(template.length);
    template.copy(out);
    const { local, remote } = tuple(i);
    out.write(local.slice(-5), sportAt, 'latin1');
    out.write(remote.slice(3, 14), remoteAt, 'latin1');
    return out;
  };
}

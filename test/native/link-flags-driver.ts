// Run under nsenter by netlink.test.ts: prints {ifname: flags or -errno} for argv's interfaces,
// as native/netlink.ts reads them from inside that namespace.
import { closeRouteSocket, linkFlags, openRouteSocket } from '../../native/netlink.js';

const fd = openRouteSocket();
if (fd < 0) throw new Error(`rtnetlink socket: errno ${-fd}`);
const out: Record<string, number> = {};
for (const name of process.argv.slice(2)) out[name] = linkFlags(fd, name);
closeRouteSocket(fd);
console.log(JSON.stringify(out));

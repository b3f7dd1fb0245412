// Follows a stream until ssegate revokes it, as a page would:
//   node revoked.mjs URL
// prints "open" each time the stream opens, "event <data>" for each
// message, "revoked <reason>" for ssegate-revoked, and "closed" once the
// EventSource gives up (its reconnect refused); exits 0 then, or 1 after
// 20 seconds.
import { EventSource } from "eventsource";

const [url] = process.argv.slice(2);
const say = (line) => process.stdout.write(line + "\n");
const es = new EventSource(url);
es.onopen = () => say("open");
es.onmessage = (e) => say(`event ${e.data}`);
es.addEventListener("ssegate-revoked", (e) => say(`revoked ${JSON.parse(e.data).reason}`));
es.onerror = () => {
  if (es.readyState === EventSource.CLOSED) {
    say("closed");
    process.exit(0);
  }
};
setTimeout(() => { say("timeout"); process.exit(1); }, 20000);

// Follows several topics on one stream with the eventsource package, a
// spec-following EventSource:
//   node topics.mjs URL COUNT TOPIC...
// prints "open" each time the stream opens and "event <topic> <data>" for
// each event, with a listener per topic as a page would; exits 0 after
// COUNT events, or 1 after 20 seconds.
import { EventSource } from "eventsource";

const [url, count, ...topics] = process.argv.slice(2);
const say = (line) => process.stdout.write(line + "\n");
let seen = 0;
const es = new EventSource(url);
es.onopen = () => say("open");
for (const t of topics) {
  es.addEventListener(t, (e) => {
    say(`event ${t} ${e.data}`);
    if (++seen === Number(count)) {
      es.close();
      process.exit(0);
    }
  });
}
setTimeout(() => { say("timeout"); process.exit(1); }, 20000);

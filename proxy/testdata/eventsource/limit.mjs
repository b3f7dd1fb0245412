// Opens streams on the URL given as argument with the eventsource package,
// a spec-following EventSource, to check what a browser does at a full
// route: the first clients stream on, the one over the limit is told to
// come back later and does, once a slot is free.
//
// Prints one line per step to stdout ("open 3", "message 2 tick", ...),
// and exits 0 once client 3 has received an event after being turned
// away, or 1 after 15 seconds.
import { EventSource } from "eventsource";

const url = process.argv[2];
const say = (line) => process.stdout.write(line + "\n");
const clients = [];
let turnedAway = false;

function open(n) {
  return new Promise((resolve) => {
    const es = new EventSource(url);
    clients[n] = es;
    es.onopen = () => { say(`open ${n}`); resolve(); };
    es.onmessage = (e) => {
      say(`message ${n} ${e.data}`);
      if (n === 3 && turnedAway) {
        say("done");
        process.exit(0);
      }
    };
    es.onerror = () => {
      say(`error ${n} readyState=${es.readyState}`);
      if (n === 3 && !turnedAway) {
        // The refused stream ended and the client reconnects by itself
        // after the retry hint; make room for it.
        turnedAway = true;
        clients[1].close();
        say("closed 1");
      }
    };
  });
}

setTimeout(() => { say("timeout"); process.exit(1); }, 15000);
await open(1);
await open(2);
await open(3);

// Live notifications for the homeowner page (server-sent events). Everything else works without it.
"use strict";
(function () {
  const status = document.getElementById("live-status");
  const list = document.getElementById("notifications");
  const template = document.getElementById("note-template");
  if (!status || !list || !template || !window.EventSource) return;
  const words = JSON.parse(list.dataset.words);  // in the household's language
  const labels = words.labels;
  const states = words.states;
  const order = JSON.parse(list.dataset.order);  // the page's button order
  const settled = JSON.parse(list.dataset.settled);
  const tz = list.dataset.tz || "UTC";

  function when(iso) {  // the same words as the server: "Tue 03 Mar, 08:00 UTC"
    const parts = Object.fromEntries(new Intl.DateTimeFormat("en-GB", {
      timeZone: tz, weekday: "short", day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit",
      hourCycle: "h23" }).formatToParts(new Date(iso)).map((p) => [p.type, p.value]));
    return `${parts.weekday} ${parts.day} ${parts.month}, ${parts.hour}:${parts.minute} ${tz === "UTC" ? "UTC" : `(${tz})`}`;
  }

  function fill(item, n) {
    item.className = `card note fresh status-${n.status} severity-${n.severity || "info"}`;
    item.querySelector(".state").textContent =
      when(n.created_at) + (states[n.status] ? ` · ${states[n.status]}` : "");
    const form = item.querySelector("form");
    form.action = `/home/notifications/${n.notification_id}`;
    form.querySelectorAll("button").forEach((b) => b.remove());
    const offered = settled.includes(n.status) ? [] : order.filter((a) => (n.actions || []).includes(a)
      && !(a === "acknowledge" && n.status === "acknowledged"));
    if (!offered.includes("talk_to_person")) offered.push("talk_to_person");  // a person, always
    for (const action of offered) {
      const button = document.createElement("button");
      button.type = "submit"; button.name = "action"; button.value = action;
      button.className = action === "talk_to_person" ? "talk" : "secondary";
      button.textContent = labels[action];
      form.append(button);
    }
  }

  const source = new EventSource(status.dataset.stream, { withCredentials: true });
  source.addEventListener("open", () => { status.textContent = words.live; });
  source.addEventListener("error", () => { status.textContent = words.reconnecting; });
  source.addEventListener("notification", (event) => {
    const n = JSON.parse(event.data);
    if (n.status === "held") return;  // quiet hours: it arrives when they end
    let item = list.querySelector(`[data-notification="${n.notification_id}"]`);
    if (!item) {
      item = template.content.firstElementChild.cloneNode(true);
      item.dataset.notification = n.notification_id;
      item.lang = n.language || "en";
      item.querySelector("h3").textContent = n.title;
      item.querySelector(".body").textContent = n.body;
      const empty = list.querySelector(".empty");
      if (empty) empty.remove();
      list.prepend(item);
      status.textContent = `${words.new}: ${n.title}`;
    }
    fill(item, n);
  });
})();

// Live notifications for the homeowner page (server-sent events). Everything else works without it.
"use strict";
(function () {
  const status = document.getElementById("live-status");
  const list = document.getElementById("notifications");
  const template = document.getElementById("note-template");
  if (!status || !list || !template || !window.EventSource) return;
  const source = new EventSource(status.dataset.stream, { withCredentials: true });
  source.addEventListener("open", () => { status.textContent = "Live: new messages appear here."; });
  source.addEventListener("error", () => { status.textContent = "Reconnecting…"; });
  source.addEventListener("notification", (event) => {
    const n = JSON.parse(event.data);
    if (list.querySelector(`[data-notification="${n.notification_id}"]`)) return;
    const item = template.content.firstElementChild.cloneNode(true);
    item.dataset.notification = n.notification_id;
    item.querySelector("h3").textContent = n.title;
    item.querySelector(".body").textContent = n.body;
    item.querySelector(".when").textContent = new Date(n.created_at).toUTCString();
    item.querySelector("form").action = `/home/notifications/${n.notification_id}`;
    const empty = list.querySelector(".empty");
    if (empty) empty.remove();
    list.prepend(item);
    status.textContent = `New message: ${n.title}`;
  });
})();

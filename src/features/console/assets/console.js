// hoard console: the only script the pages load (same origin, CSP script-src 'self').
// Shows times in the reader's time zone and, on pages opened with ?refresh=N,
// reloads every N seconds (at least 5) while the tab is visible.

for (const t of document.querySelectorAll('time[datetime]')) {
  const d = new Date(t.getAttribute('datetime'));
  if (!Number.isNaN(d.getTime())) {
    t.title = t.getAttribute('datetime');
    t.textContent = d.toLocaleString();
  }
}
const every = Number(new URLSearchParams(location.search).get('refresh'));
if (Number.isFinite(every) && every > 0) {
  setTimeout(function reload() {
    if (document.visibilityState === 'visible') location.reload();
    else setTimeout(reload, 1000);
  }, Math.max(5, every) * 1000);
}

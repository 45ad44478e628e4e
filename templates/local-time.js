// Shows each <time data-local> of a shop page in the reader's own time
// zone and language; where scripts do not run, the UTC text stays.
for (const element of document.querySelectorAll("time[data-local]")) {
  const at = new Date(element.dateTime);
  if (!Number.isNaN(at.getTime())) {
    element.textContent = at.toLocaleString(undefined, {
      dateStyle: "long",
      timeStyle: "short",
    });
    element.title = element.dateTime;
  }
}

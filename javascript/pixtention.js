// PixTention: debounced prompt typing -> live suggestions; suggestion actions; status polling.
// Relies only on element ids (ours, and the WebUI's txt2img_prompt / img2img_prompt) and on
// data-pixtention-* attributes, never on Gradio-internal DOM classes.
(function () {
    "use strict";

    var TABS = ["txt2img", "img2img"];
    var DEBOUNCE_MS = 400;
    var POLL_MS = 2000;
    var timers = {};
    var lastQuery = {};

    function root() {
        var app = document.getElementsByTagName("gradio-app")[0];
        return app && app.shadowRoot ? app.shadowRoot : document;
    }

    function byId(id) {
        return root().querySelector("#" + id);
    }

    function field(id) {
        var el = byId(id);
        if (!el) return null;
        if (el.tagName === "TEXTAREA" || el.tagName === "INPUT") return el;
        return el.querySelector("textarea, input");
    }

    function button(id) {
        var el = byId(id);
        if (!el) return null;
        return el.tagName === "BUTTON" ? el : el.querySelector("button");
    }

    function setValue(input, value) {
        input.value = value;
        input.dispatchEvent(new Event("input", { bubbles: true }));
    }

    function promptTab(target) {
        for (var i = 0; i < TABS.length; i++) {
            var box = byId(TABS[i] + "_prompt");
            if (box && box.contains(target)) return TABS[i];
        }
        return null;
    }

    function requestSuggestions(tab) {
        var prompt = field(tab + "_prompt");
        var query = field("pixtention_" + tab + "_query");
        var go = button("pixtention_" + tab + "_suggest");
        if (!prompt || !query || !go) return;
        if (lastQuery[tab] === prompt.value) return;
        lastQuery[tab] = prompt.value;
        setValue(query, prompt.value);
        go.click();
    }

    function schedule(tab) {
        clearTimeout(timers[tab]);
        timers[tab] = setTimeout(function () {
            requestSuggestions(tab);
        }, DEBOUNCE_MS);
    }

    function appendItem(input, item) {
        var items = input.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
        if (items.indexOf(item) < 0) items.push(item);
        setValue(input, items.join(", "));
    }

    function act(tab, data, action) {
        var name = data.pixtentionName;
        if (action === "add") {
            var prompt = field(tab + "_prompt");
            if (!prompt || prompt.value.indexOf("<lora:" + name + ":") >= 0) return;
            var extra = " <lora:" + name + ":" + data.pixtentionWeight + ">";
            if (data.pixtentionTriggers) extra += ", " + data.pixtentionTriggers;
            setValue(prompt, prompt.value.replace(/\s+$/, "") + extra);
        } else if (action === "pin") {
            var pins = field("pixtention_" + tab + "_pins");
            var hash = data.pixtentionHash ? "#" + data.pixtentionHash : "";
            if (pins) appendItem(pins, name + hash);
        } else if (action === "exclude") {
            var exclude = field("pixtention_" + tab + "_exclude");
            if (exclude) appendItem(exclude, name);
        }
        lastQuery[tab] = null;
        schedule(tab);
    }

    // Settings that change which adapters are suggested: editing one refreshes the table.
    var SETTINGS = ["mode", "k", "clusters", "threshold", "per_phrase", "pins", "exclude"];

    function settingTab(target) {
        for (var i = 0; i < TABS.length; i++) {
            for (var j = 0; j < SETTINGS.length; j++) {
                var box = byId("pixtention_" + TABS[i] + "_" + SETTINGS[j]);
                if (box && box.contains(target)) return TABS[i];
            }
        }
        return null;
    }

    function onEdit(event) {
        var target = event.composedPath ? event.composedPath()[0] : event.target;
        var tab = promptTab(target);
        if (!tab) {
            tab = settingTab(target);
            if (tab) lastQuery[tab] = null;  // same prompt, other settings: ask again
        }
        if (tab) schedule(tab);
    }

    document.addEventListener("input", onEdit, true);
    document.addEventListener("change", onEdit, true);

    document.addEventListener("click", function (event) {
        var path = event.composedPath ? event.composedPath() : [event.target];
        for (var i = 0; i < path.length; i++) {
            var el = path[i];
            if (el && el.dataset && el.dataset.pixtentionAction) {
                var table = el.closest("[data-pixtention-tab]");
                if (table) act(table.dataset.pixtentionTab, el.dataset, el.dataset.pixtentionAction);
                return;
            }
        }
    }, true);

    setInterval(function () {
        for (var i = 0; i < TABS.length; i++) {
            var tab = TABS[i];
            var status = byId("pixtention_" + tab + "_status");
            var refresh = button("pixtention_" + tab + "_refresh");
            if (!status || !refresh) continue;
            var line = status.querySelector("[data-pixtention-busy]");
            if (!line || line.dataset.pixtentionBusy === "1") refresh.click();
        }
    }, POLL_MS);
})();

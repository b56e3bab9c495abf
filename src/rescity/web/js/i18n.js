// The dashboard's words in English and Chinese (zh-CN). Keys are stable; a missing key
// shows itself, so a gap is seen, not hidden.
export const WORDS = {
  en: {
    title: "ResCity · one-screen overview", brand: "ResCity", lang: "中文",
    signin: "Sign in", username: "Username", password: "Password", signout: "Sign out",
    signin_failed: "Sign-in failed", signin_hint: "The demo's accounts: chief, officer-<district>, crew-<unit>, citizen-li (password rescity-demo).",
    layers: "Layers", legend: "Levels", summary: "Now",
    water: "Water supply", drainage: "Drainage", gas: "Gas", power: "Power", road: "Roads", bridge: "Bridges",
    utility_tunnel: "Utility tunnel", facilities: "Critical facilities", sensors: "Sensors", risk: "Risk map (four colours)",
    districts: "Districts", alarms: "Warnings", incidents: "Incidents", scenario: "Scenario impact",
    red: "Red", orange: "Orange", yellow: "Yellow", blue: "Blue", normal: "Normal",
    tab_warnings: "Warnings", tab_incidents: "Incidents", tab_scenarios: "Scenarios", tab_report: "Report",
    live: "live", offline: "reconnecting", open_alarms: "open warnings", open_incidents: "open incidents",
    red_cells: "red/orange cells", no_events: "No live events yet.",
    opened: "opened", fired: "fired", escalated: "escalated", deescalated: "de-escalated", updated: "updated",
    resolved: "resolved", reopened: "reopened", acknowledged: "acknowledged", muted: "muted", unmuted: "unmuted",
    grouped: "grouped", pending: "pending", firing: "firing",
    filter_open: "Open only", detail: "Detail", timeline: "Timeline", note_reason: "Note or reason",
    units: "Units", state: "State", level: "Level", type: "Type", place: "Place", created: "Opened",
    act_verify: "Verify", act_dismiss: "Dismiss", act_dispatch: "Dispatch", act_accept: "Accept",
    act_arrive: "Arrive", act_resolve: "Resolve", act_reject: "Reject", act_review: "Review",
    act_close: "Close", act_reopen: "Reopen", act_note: "Note", no_actions: "No action is yours to take now.",
    need_text: "This action needs a note or a reason.",
    hazard: "Hazard", earthquake: "Earthquake", rainstorm: "Rainstorm", burst: "Pipe burst", outage: "Power outage",
    magnitude: "Magnitude", depth_km: "Depth (km)", return_period: "Return period (years)", duration: "Duration (h)",
    pipe: "Pipe id", substation: "Substation id", realizations: "Realizations", seed: "Seed", run: "Run",
    queued: "queued", running: "running", done: "done", failed: "failed", curves: "Resilience curves (service %, hours)",
    affected: "affected", metrics: "Metrics",
    report_title: "Report a problem (12345)", category: "Category", text: "What do you see?", contact: "Contact (optional)",
    pick_place: "Click the map to set the place.", submit: "Submit", my_reports: "My reports", reported: "Report filed",
    cat_waterlogging: "Waterlogging", cat_gas_leak: "Gas smell", cat_main_break: "Water main break",
    cat_road_collapse: "Road collapse", cat_power_outage: "Power cut", cat_sewer_gas: "Sewer smell",
    forbidden: "Not allowed for your role.", error: "Error",
    act_create: "Opened", act_escalate: "Escalated", act_merge: "Merged", act_link: "Linked",
    act_deadline_missed: "Deadline missed", act_add_alarms: "Warnings added", act_add_report: "Report joined",
    act_set_level: "Level changed", act_reply: "Reply", act_attach: "Attachment", act_add_task: "Task added",
    act_complete_task: "Task done", act_absorb: "Absorbed",
    m_robustness_pct: "Robustness (min Q, %)", m_loss_of_resilience_pct_h: "Loss of resilience (%·h)",
    m_resilience_index: "Resilience index", m_t_recover_95_h: "Time to 95 % (h)", m_t_recover_100_h: "Time to 100 % (h)",
    m_time_below_threshold_h: "Time below threshold (h)", m_threshold_pct: "Threshold (%)",
    m_t_start_h: "Start (h)", m_t_end_h: "End (h)",
    by_district: "By district", population: "Residents", no_water: "Without water (peak)",
    no_power: "Without power (peak)", facilities_hit: "Facilities hit", flood_m3: "Flooded (m³)",
    predict: "Predict the impact (valves, customers)", prediction: "Main-break prediction", burst_pipe: "Burst pipe",
    valves: "Valves to close", cut_off: "Customers cut off by the isolation",
    no_water_open: "Customers without water if not isolated", leak_m3: "Water lost until the repair (m³)",
  },
  zh: {
    title: "韧城 · 一屏统览", brand: "韧城 ResCity", lang: "English",
    signin: "登录", username: "用户名", password: "密码", signout: "退出",
    signin_failed: "登录失败", signin_hint: "演示账号：chief、officer-<区县>、crew-<单位>、citizen-li（密码 rescity-demo）。",
    layers: "图层", legend: "预警等级", summary: "当前",
    water: "供水", drainage: "排水", gas: "燃气", power: "电力", road: "道路", bridge: "桥梁",
    utility_tunnel: "综合管廊", facilities: "重点设施", sensors: "传感器", risk: "四色风险图",
    districts: "区县", alarms: "预警", incidents: "事件", scenario: "推演影响",
    red: "红色", orange: "橙色", yellow: "黄色", blue: "蓝色", normal: "正常",
    tab_warnings: "预警", tab_incidents: "事件", tab_scenarios: "推演", tab_report: "上报",
    live: "实时", offline: "重连中", open_alarms: "未解除预警", open_incidents: "未办结事件",
    red_cells: "红/橙网格", no_events: "暂无实时消息。",
    opened: "产生", fired: "触发", escalated: "升级", deescalated: "降级", updated: "更新",
    resolved: "解除", reopened: "重开", acknowledged: "确认", muted: "抑制", unmuted: "取消抑制",
    grouped: "归并", pending: "待定", firing: "报警中",
    filter_open: "只看未办结", detail: "详情", timeline: "处置过程", note_reason: "备注或原因",
    units: "处置单位", state: "状态", level: "级别", type: "类型", place: "位置", created: "发生",
    act_verify: "核实", act_dismiss: "排除", act_dispatch: "派单", act_accept: "接单",
    act_arrive: "到场", act_resolve: "处置完成", act_reject: "退回", act_review: "审核",
    act_close: "办结", act_reopen: "重启", act_note: "备注", no_actions: "当前没有您可执行的操作。",
    need_text: "此操作需要填写备注或原因。",
    hazard: "灾种", earthquake: "地震", rainstorm: "暴雨", burst: "爆管", outage: "停电",
    magnitude: "震级", depth_km: "震源深度（千米）", return_period: "重现期（年）", duration: "历时（小时）",
    pipe: "管段编号", substation: "变电站编号", realizations: "样本数", seed: "随机种子", run: "推演",
    queued: "排队中", running: "推演中", done: "完成", failed: "失败", curves: "韧性曲线（服务水平 %，小时）",
    affected: "受影响", metrics: "指标",
    report_title: "问题上报（12345）", category: "类别", text: "您看到了什么？", contact: "联系方式（可选）",
    pick_place: "请在地图上点击选择位置。", submit: "提交", my_reports: "我的上报", reported: "已受理",
    cat_waterlogging: "积水内涝", cat_gas_leak: "燃气异味", cat_main_break: "供水爆管",
    cat_road_collapse: "道路塌陷", cat_power_outage: "停电", cat_sewer_gas: "下水道异味",
    forbidden: "您的角色无权执行此操作。", error: "错误",
    act_create: "立案", act_escalate: "升级", act_merge: "合并", act_link: "关联",
    act_deadline_missed: "超时", act_add_alarms: "追加预警", act_add_report: "并入上报",
    act_set_level: "调整级别", act_reply: "答复", act_attach: "附件", act_add_task: "增派任务",
    act_complete_task: "任务完成", act_absorb: "并入",
    m_robustness_pct: "鲁棒性（最低服务水平，%）", m_loss_of_resilience_pct_h: "韧性损失（%·小时）",
    m_resilience_index: "韧性指数", m_t_recover_95_h: "恢复至 95 % 用时（小时）", m_t_recover_100_h: "完全恢复用时（小时）",
    m_time_below_threshold_h: "低于阈值时长（小时）", m_threshold_pct: "阈值（%）",
    m_t_start_h: "起始（小时）", m_t_end_h: "结束（小时）",
    by_district: "分区县影响", population: "常住人口", no_water: "停水人数（峰值）",
    no_power: "停电人数（峰值）", facilities_hit: "受影响重点设施", flood_m3: "积水量（立方米）",
    predict: "影响预判（关阀、停水用户）", prediction: "爆管影响预判", burst_pipe: "爆管管段",
    valves: "需关闭阀门", cut_off: "关阀停水用户",
    no_water_open: "不关阀时停水用户", leak_m3: "修复前漏失水量（立方米）",
  },
};

let lang = localStorage.getItem("rescity.lang") || (navigator.language.startsWith("zh") ? "zh" : "en");

export const t = (key) => (WORDS[lang] && WORDS[lang][key]) || key;
export const current = () => lang;
export const isZh = () => lang === "zh";

export function setLang(l) {
  lang = l;
  localStorage.setItem("rescity.lang", l);
  document.documentElement.lang = l === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  document.querySelectorAll("[data-i18n]").forEach((e) => { e.textContent = t(e.dataset.i18n); });
  document.querySelectorAll("[data-i18n-ph]").forEach((e) => { e.placeholder = t(e.dataset.i18nPh); });
}

// A value with an English and a Chinese form (``name`` / ``name_zh``) in the current language.
export const pick = (obj, key) => (isZh() && obj[`${key}_zh`]) || obj[key] || "";

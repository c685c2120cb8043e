#include "search/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace tessera::search::svg {
namespace {

constexpr double kLeft = 62, kRight = 16, kTop = 26, kBottom = 40;  // plot-area margins [px]

std::string fixed(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// Tick values of an axis: decades (with 2 and 5 when the range spans fewer than two), or
// 1/2/5 steps giving about five ticks.
std::vector<double> ticks(const Axis& a) {
  std::vector<double> out;
  if (a.log) {
    const int first = static_cast<int>(std::floor(std::log10(a.lo))), last = static_cast<int>(std::ceil(std::log10(a.hi)));
    const bool fine = last - first <= 2;
    for (int k = first; k <= last; ++k)
      for (double m : fine ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
        const double v = m * std::pow(10.0, k);
        if (v >= a.lo * (1 - 1e-9) && v <= a.hi * (1 + 1e-9)) out.push_back(v);
      }
    return out;
  }
  const double raw = (a.hi - a.lo) / 5, decade = std::pow(10.0, std::floor(std::log10(raw)));
  double step = decade;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * decade >= raw) {
      step = m * decade;
      break;
    }
  for (double v = std::ceil(a.lo / step) * step; v <= a.hi + step * 1e-9; v += step) out.push_back(std::fabs(v) < step * 1e-9 ? 0 : v);
  return out;
}

}  // namespace

std::string escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string number(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

Axis fit(const std::vector<double>& values, bool log, const std::string& label, double pad) {
  Axis a;
  a.log = log;
  a.label = label;
  double lo = INFINITY, hi = -INFINITY;
  for (double v : values)
    if (std::isfinite(v) && (!log || v > 0)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (!(lo <= hi)) lo = log ? 1 : 0, hi = log ? 10 : 1;
  if (log) {
    double l = std::log10(lo), h = std::log10(hi);
    if (h - l < 0.3) l -= 0.15, h += 0.15;
    const double p = std::max(pad * (h - l), 0.02);
    a.lo = std::pow(10.0, l - p), a.hi = std::pow(10.0, h + p);
  } else {
    if (hi - lo < 1e-12 * std::max(1.0, std::fabs(hi))) lo -= 0.5 * std::max(1.0, std::fabs(lo)), hi += 0.5 * std::max(1.0, std::fabs(hi));
    const double p = pad * (hi - lo);
    a.lo = lo - p, a.hi = hi + p;
  }
  return a;
}

Plot::Plot(std::string id, std::string title, int width, int height, Axis x, Axis y)
    : id_(std::move(id)), title_(std::move(title)), width_(width), height_(height), x_(std::move(x)), y_(std::move(y)) {}

double Plot::px(double x) const {
  const double t = x_.log ? (std::log10(x) - std::log10(x_.lo)) / (std::log10(x_.hi) - std::log10(x_.lo))
                          : (x - x_.lo) / (x_.hi - x_.lo);
  return kLeft + std::clamp(t, 0.0, 1.0) * (width_ - kLeft - kRight);
}

double Plot::py(double y) const {
  const double t = y_.log ? (std::log10(y) - std::log10(y_.lo)) / (std::log10(y_.hi) - std::log10(y_.lo))
                          : (y - y_.lo) / (y_.hi - y_.lo);
  return height_ - kBottom - std::clamp(t, 0.0, 1.0) * (height_ - kTop - kBottom);
}

bool Plot::inside(double x, double y) const {
  auto in = [](double v, const Axis& a) { return std::isfinite(v) && (!a.log || v > 0) && v >= a.lo && v <= a.hi; };
  return in(x, x_) && in(y, y_);
}

void Plot::point(double x, double y, const std::string& css_class, const std::string& title, double radius) {
  if (!inside(x, y)) return;
  marks_ += "<circle class=\"" + css_class + "\" cx=\"" + fixed(px(x)) + "\" cy=\"" + fixed(py(y)) + "\" r=\"" +
            fixed(radius) + "\">" + (title.empty() ? "" : "<title>" + escape(title) + "</title>") + "</circle>\n";
}

void Plot::line(const std::vector<std::pair<double, double>>& points, const std::string& css_class, bool step,
                const std::string& title) {
  std::string pts;
  double last_y = 0;
  bool first = true;
  for (const auto& [x, y] : points) {
    if (!std::isfinite(x) || !std::isfinite(y) || (x_.log && x <= 0) || (y_.log && y <= 0)) continue;
    if (step && !first && y != last_y) pts += fixed(px(x)) + "," + fixed(py(last_y)) + " ";
    pts += fixed(px(x)) + "," + fixed(py(y)) + " ";
    last_y = y;
    first = false;
  }
  if (pts.empty()) return;
  pts.pop_back();
  marks_ += "<polyline class=\"" + css_class + "\" points=\"" + pts + "\">" +
            (title.empty() ? "" : "<title>" + escape(title) + "</title>") + "</polyline>\n";
}

void Plot::hline(double y, const std::string& css_class, const std::string& label) {
  if (!inside(x_.lo, y)) return;
  const std::string yy = fixed(py(y));
  marks_ += "<line class=\"" + css_class + "\" x1=\"" + fixed(kLeft) + "\" y1=\"" + yy + "\" x2=\"" +
            fixed(width_ - kRight) + "\" y2=\"" + yy + "\"><title>" + escape(label) + "</title></line>\n" +
            "<text class=\"note\" x=\"" + fixed(width_ - kRight - 2) + "\" y=\"" + fixed(py(y) - 3) +
            "\" text-anchor=\"end\">" + escape(label) + "</text>\n";
}

void Plot::legend(const std::string& css_class, const std::string& text) {
  const double y = kTop + 10 + 13 * legends_++;
  marks_ += "<rect class=\"" + css_class + " swatch\" x=\"" + fixed(kLeft + 6) + "\" y=\"" + fixed(y - 7) +
            "\" width=\"10\" height=\"6\"></rect><text class=\"note\" x=\"" + fixed(kLeft + 20) + "\" y=\"" + fixed(y) +
            "\">" + escape(text) + "</text>\n";
}

std::string Plot::str() const {
  const double x0 = kLeft, x1 = width_ - kRight, y0 = height_ - kBottom, y1 = kTop;
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" id=\"" + escape(id_) + "\" width=\"" +
                  std::to_string(width_) + "\" height=\"" + std::to_string(height_) + "\" viewBox=\"0 0 " +
                  std::to_string(width_) + " " + std::to_string(height_) + "\" role=\"img\" aria-label=\"" +
                  escape(title_) + "\">\n<text class=\"title\" x=\"" + fixed(x0) + "\" y=\"16\">" + escape(title_) +
                  "</text>\n<rect class=\"frame\" x=\"" + fixed(x0) + "\" y=\"" + fixed(y1) + "\" width=\"" +
                  fixed(x1 - x0) + "\" height=\"" + fixed(y0 - y1) + "\"></rect>\n";
  for (double t : ticks(x_)) {
    const std::string x = fixed(px(t));
    s += "<line class=\"grid\" x1=\"" + x + "\" y1=\"" + fixed(y1) + "\" x2=\"" + x + "\" y2=\"" + fixed(y0) +
         "\"></line><text class=\"tick\" x=\"" + x + "\" y=\"" + fixed(y0 + 13) + "\" text-anchor=\"middle\">" +
         number(t, 6) + "</text>\n";
  }
  for (double t : ticks(y_)) {
    const std::string y = fixed(py(t));
    s += "<line class=\"grid\" x1=\"" + fixed(x0) + "\" y1=\"" + y + "\" x2=\"" + fixed(x1) + "\" y2=\"" + y +
         "\"></line><text class=\"tick\" x=\"" + fixed(x0 - 4) + "\" y=\"" + fixed(py(t) + 4) +
         "\" text-anchor=\"end\">" + number(t, 6) + "</text>\n";
  }
  s += "<text class=\"label\" x=\"" + fixed((x0 + x1) / 2) + "\" y=\"" + fixed(height_ - 8.0) +
       "\" text-anchor=\"middle\">" + escape(x_.label) + "</text>\n<text class=\"label\" x=\"14\" y=\"" +
       fixed((y0 + y1) / 2) + "\" text-anchor=\"middle\" transform=\"rotate(-90 14 " + fixed((y0 + y1) / 2) + ")\">" +
       escape(y_.label) + "</text>\n";
  return s + marks_ + "</svg>\n";
}

}  // namespace tessera::search::svg

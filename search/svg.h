// Inline SVG charts for the tuning report (search/report.h): one plot area with linear or
// logarithmic axes, ticks and labels, and the marks the report draws (points, step lines,
// reference lines). Text is XML-escaped; the output needs no script, font or network.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace tessera::search::svg {

/// `text` with &, <, >, " and ' as XML entities.
std::string escape(const std::string& text);

/// A number in at most `digits` significant digits ("123", "0.0123", "1.2e+06").
std::string number(double v, int digits = 3);

struct Axis {
  double lo = 0, hi = 1;  ///< data range shown (lo > 0 when log)
  bool log = false;
  std::string label;
};

/// The range of `values` widened by `pad` (a share of the range, or of a decade when `log`);
/// a single value or an empty list gets a range around it (or [0, 1]).
Axis fit(const std::vector<double>& values, bool log, const std::string& label, double pad = 0.05);

class Plot {
 public:
  /// A chart `width` x `height` pixels whose <svg> has id `id` and class "chart".
  Plot(std::string id, std::string title, int width, int height, Axis x, Axis y);

  /// A point; `title` is its tooltip. Points outside the axes are not drawn.
  void point(double x, double y, const std::string& css_class, const std::string& title = "", double radius = 2.5);
  /// A polyline through `points` (clamped into the plot area); `step` draws it as a staircase.
  void line(const std::vector<std::pair<double, double>>& points, const std::string& css_class, bool step = false,
            const std::string& title = "");
  /// A horizontal line at y with a label at its right end.
  void hline(double y, const std::string& css_class, const std::string& label);
  /// A legend entry (a swatch of `css_class` and its text), stacked at the top left.
  void legend(const std::string& css_class, const std::string& text);

  /// The finished <svg> element.
  std::string str() const;

 private:
  double px(double x) const;
  double py(double y) const;
  bool inside(double x, double y) const;

  std::string id_, title_;
  int width_, height_;
  Axis x_, y_;
  std::string marks_;
  int legends_ = 0;
};

}  // namespace tessera::search::svg

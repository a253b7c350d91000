"""会员: levels, paid membership cards, points and the points mall, stored value and birthday perks."""

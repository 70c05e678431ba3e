package seed

// Given names by birth cohort, so a 90-year-old is not called Emma and a
// toddler is not called Bjørg. Lists follow the most common names in
// Statistics Norway's name statistics for each cohort.
var (
	femaleNamesOld = []string{
		"Anne", "Inger", "Kari", "Marit", "Ingrid", "Liv", "Eva", "Berit", "Astrid", "Bjørg",
		"Solveig", "Randi", "Ragnhild", "Gunn", "Turid", "Kirsten", "Karin", "Else", "Aud", "Reidun",
		"Gerd", "Sissel", "Unni", "Grete", "Wenche", "Elin", "Torill", "Signe", "Jorunn", "Margit",
		"Åse", "Oddny", "Borghild", "Magnhild", "Solbjørg", "Ellen", "Gunvor", "Ruth", "Marie", "Johanne",
	}
	maleNamesOld = []string{
		"Jan", "Per", "Bjørn", "Ole", "Kjell", "Knut", "Arne", "Svein", "Hans", "Odd",
		"Terje", "Tor", "Rolf", "Leif", "Gunnar", "Harald", "Olav", "Egil", "Nils", "Einar",
		"Rune", "Finn", "Roar", "Arild", "Helge", "Kåre", "Magne", "Sverre", "Tore", "Trygve",
		"Oddvar", "Ivar", "Asbjørn", "Sigurd", "Reidar", "Alf", "Steinar", "Johan", "Karl", "Erling",
	}
	femaleNamesMid = []string{
		"Hilde", "Marianne", "Kristin", "Elisabeth", "Camilla", "Silje", "Hege", "Tone", "Heidi", "Nina",
		"Linda", "Ingvild", "Kristine", "Lene", "Mari", "Monica", "Trine", "Siri", "Hanne", "Cecilie",
		"Anette", "Line", "Therese", "Ida", "Marte", "Stine", "Guro", "Tonje", "Ingunn", "Anita",
		"Maria", "Anne", "Kari", "Randi", "Julie", "Marthe", "Helene", "Susanne", "Karoline", "Agnieszka",
	}
	maleNamesMid = []string{
		"Thomas", "Morten", "Geir", "Lars", "Espen", "Martin", "Andreas", "Anders", "Trond", "Kristian",
		"Stian", "Øyvind", "Eirik", "Erik", "Jon", "Christian", "Marius", "Kjetil", "Tommy", "Magnus",
		"Håkon", "Daniel", "Fredrik", "Ole", "Per", "Jan", "Frode", "Vegard", "Sindre", "Petter",
		"Henrik", "Jørgen", "Rune", "Terje", "Sondre", "Knut", "Mohammed", "Ali", "Tomasz", "Alexander",
	}
	femaleNamesYoung = []string{
		"Nora", "Emma", "Sofie", "Olivia", "Ella", "Leah", "Sara", "Ingrid", "Maja", "Frida",
		"Thea", "Ida", "Aurora", "Vilde", "Emilie", "Hedda", "Amalie", "Sigrid", "Tiril", "Astrid",
		"Selma", "Julie", "Mathilde", "Iben", "Oline", "Linnea", "Eline", "Hanna", "Ada", "Alma",
		"Live", "Jenny", "Mia", "Ingeborg", "Ylva", "Tuva", "Amina", "Fatima", "Hannah", "Marie",
	}
	maleNamesYoung = []string{
		"Jakob", "Emil", "Noah", "Oliver", "Filip", "William", "Lucas", "Liam", "Henrik", "Oskar",
		"Aksel", "Theodor", "Elias", "Kasper", "Magnus", "Johannes", "Isak", "Mathias", "Tobias", "Olav",
		"Sander", "Jonas", "Ludvig", "Adrian", "Markus", "Even", "Sebastian", "Mohammad", "Vetle", "Iver",
		"Håkon", "Sigurd", "Ulrik", "Peder", "Benjamin", "Gustav", "Leon", "Matheo", "Storm", "Edvard",
	}

	familyNames = []string{
		"Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen", "Jensen", "Karlsen",
		"Johnsen", "Pettersen", "Eriksen", "Berg", "Haugen", "Hagen", "Johannessen", "Andreassen", "Jacobsen", "Dahl",
		"Jørgensen", "Halvorsen", "Henriksen", "Lund", "Sørensen", "Jakobsen", "Moen", "Gundersen", "Iversen", "Strand",
		"Solberg", "Svendsen", "Eide", "Knutsen", "Martinsen", "Paulsen", "Bakken", "Kristoffersen", "Mathisen", "Lie",
		"Amundsen", "Nguyen", "Rasmussen", "Ali", "Lunde", "Solheim", "Berge", "Moe", "Nygård", "Bakke",
		"Kristensen", "Fredriksen", "Holm", "Lien", "Hauge", "Christensen", "Andresen", "Nielsen", "Knudsen", "Evensen",
		"Sæther", "Aas", "Myhre", "Hanssen", "Ahmed", "Haugland", "Thomassen", "Sivertsen", "Simonsen", "Danielsen",
		"Berntsen", "Sandvik", "Rønning", "Arnesen", "Antonsen", "Næss", "Vik", "Haug", "Ellingsen", "Thorsen",
		"Edvardsen", "Birkeland", "Isaksen", "Gulbrandsen", "Ruud", "Aasen", "Strøm", "Myklebust", "Tangen", "Ødegård",
		"Eliassen", "Helland", "Bøe", "Jenssen", "Aune", "Mikkelsen", "Tveit", "Brekke", "Abrahamsen", "Madsen",
		"Nowak", "Khan", "Hussain", "Kowalski", "Tran", "Mohamed", "Hassan", "Ødegaard", "Hovland", "Dale",
	}

	streetNames = []string{
		"Storgata", "Kirkeveien", "Skolegata", "Parkveien", "Fjordveien", "Bjørkeveien", "Granveien", "Solbakken",
		"Kongens gate", "Dronningens gate", "Strandveien", "Møllevegen", "Elvegata", "Haugeveien", "Lindeveien",
		"Furuveien", "Tollbugata", "Nordre gate", "Søndre gate", "Markveien", "Sjøgata", "Rådhusgata", "Stasjonsveien",
		"Bakkeveien", "Ringveien", "Eikeveien", "Løkkeveien", "Tunveien", "Skogveien", "Kirkegata", "Industrivegen",
		"Hegdehaugsveien", "Olav Kyrres gate", "Sandviksveien", "Prinsens gate", "Nedre Storgate", "Øvre Slottsgate",
		"Blomsterveien", "Fagerlia", "Sletta", "Solsikkeveien", "Åsveien", "Lyngveien", "Rognveien", "Heiveien",
	}
)

// hospital is a health trust (helseforetak) or private non-profit hospital
// that reports visits to the national patient register. Names are real, the
// organisation numbers are synthetic (assigned in the practitioner pools).
type hospital struct {
	name string
}

var hospitals = []hospital{
	{name: "Oslo universitetssykehus HF"},         // 0
	{name: "Akershus universitetssykehus HF"},     // 1
	{name: "Lovisenberg Diakonale Sykehus"},       // 2
	{name: "Diakonhjemmet Sykehus"},               // 3
	{name: "Vestre Viken HF"},                     // 4
	{name: "Sykehuset Østfold HF"},                // 5
	{name: "Sykehuset Innlandet HF"},              // 6
	{name: "Sykehuset i Vestfold HF"},             // 7
	{name: "Sykehuset Telemark HF"},               // 8
	{name: "Sørlandet sykehus HF"},                // 9
	{name: "Helse Stavanger HF"},                  // 10
	{name: "Helse Fonna HF"},                      // 11
	{name: "Helse Bergen HF"},                     // 12
	{name: "Haraldsplass Diakonale Sykehus"},      // 13
	{name: "Helse Førde HF"},                      // 14
	{name: "Helse Møre og Romsdal HF"},            // 15
	{name: "St. Olavs hospital HF"},               // 16
	{name: "Helse Nord-Trøndelag HF"},             // 17
	{name: "Nordlandssykehuset HF"},               // 18
	{name: "Helgelandssykehuset HF"},              // 19
	{name: "Universitetssykehuset Nord-Norge HF"}, // 20
	{name: "Finnmarkssykehuset HF"},               // 21
}

// municipality is a place of residence with its post code, post town and
// the hospitals its residents normally use (the first is the local trust;
// referrals to the regional university hospital are added by the generator).
type municipality struct {
	postalCode string
	city       string // poststed
	name       string // kommune
	weight     int    // population in thousands, to spread residents realistically
	hospitals  []int
}

var municipalities = []municipality{
	{"0150", "OSLO", "Oslo", 717, []int{0, 2, 3}},
	{"5003", "BERGEN", "Bergen", 291, []int{12, 13}},
	{"7011", "TRONDHEIM", "Trondheim", 214, []int{16}},
	{"4006", "STAVANGER", "Stavanger", 148, []int{10}},
	{"1337", "SANDVIKA", "Bærum", 131, []int{4}},
	{"4608", "KRISTIANSAND S", "Kristiansand", 117, []int{9}},
	{"3015", "DRAMMEN", "Drammen", 103, []int{4}},
	{"2000", "LILLESTRØM", "Lillestrøm", 92, []int{1}},
	{"1607", "FREDRIKSTAD", "Fredrikstad", 85, []int{5}},
	{"4306", "SANDNES", "Sandnes", 83, []int{10}},
	{"9008", "TROMSØ", "Tromsø", 78, []int{20}},
	{"6003", "ÅLESUND", "Ålesund", 67, []int{15}},
	{"3211", "SANDEFJORD", "Sandefjord", 65, []int{7}},
	{"1400", "SKI", "Nordre Follo", 62, []int{1}},
	{"1706", "SARPSBORG", "Sarpsborg", 59, []int{5}},
	{"3117", "TØNSBERG", "Tønsberg", 58, []int{7}},
	{"3724", "SKIEN", "Skien", 56, []int{8}},
	{"8006", "BODØ", "Bodø", 53, []int{18}},
	{"1530", "MOSS", "Moss", 50, []int{5}},
	{"3256", "LARVIK", "Larvik", 48, []int{7}},
	{"1470", "LØRENSKOG", "Lørenskog", 47, []int{1}},
	{"4836", "ARENDAL", "Arendal", 45, []int{9}},
	{"5527", "HAUGESUND", "Haugesund", 38, []int{11}},
	{"3916", "PORSGRUNN", "Porsgrunn", 37, []int{8}},
	{"2317", "HAMAR", "Hamar", 32, []int{6}},
	{"6413", "MOLDE", "Molde", 32, []int{15}},
	{"3510", "HØNEFOSS", "Ringerike", 31, []int{4}},
	{"2815", "GJØVIK", "Gjøvik", 30, []int{6}},
	{"2609", "LILLEHAMMER", "Lillehammer", 29, []int{6}},
	{"3611", "KONGSBERG", "Kongsberg", 28, []int{4}},
	{"8622", "MO I RANA", "Rana", 26, []int{19}},
	{"9405", "HARSTAD", "Harstad", 25, []int{20}},
	{"7713", "STEINKJER", "Steinkjer", 24, []int{17}},
	{"6509", "KRISTIANSUND N", "Kristiansund", 24, []int{15}},
	{"6800", "FØRDE", "Sunnfjord", 22, []int{14}},
	{"8514", "NARVIK", "Narvik", 22, []int{20}},
	{"9510", "ALTA", "Alta", 21, []int{21}},
	{"7600", "LEVANGER", "Levanger", 20, []int{17}},
	{"5411", "STORD", "Stord", 19, []int{11}},
	{"2212", "KONGSVINGER", "Kongsvinger", 18, []int{6}},
	{"9600", "HAMMERFEST", "Hammerfest", 11, []int{21}},
	{"9900", "KIRKENES", "Sør-Varanger", 10, []int{21}},
}

// regionalHospital maps a local trust to the university hospital of its
// health region, where the most specialised care is referred.
var regionalHospital = map[int]int{
	1: 0, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 7: 0, 8: 0, 9: 0,
	11: 12, 13: 12, 14: 12, 10: 12,
	15: 16, 17: 16,
	18: 20, 19: 20, 21: 20,
}

package seed

// Code systems and identifier systems used in the generated resources.
const (
	systemATC       = "http://www.whocc.no/atc"
	systemSNOMED    = "http://snomed.info/sct"
	systemICD10     = "urn:oid:2.16.578.1.12.4.1.1.7110" // ICD-10 as the Norwegian Directorate of eHealth publishes it (volven 7110)
	systemActCode   = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	systemAllergyCS = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
	systemAllergyVS = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
	systemMedStmCat = "http://terminology.hl7.org/CodeSystem/medication-statement-category"
)

// allergen is a substance a patient may react to. Medicines are coded with
// ATC (Kjernejournal records drug allergies at substance or group level),
// other allergens with SNOMED CT.
type allergen struct {
	system, code, display string
	category              string // FHIR AllergyIntolerance.category
	weight                int
	intolerance           bool // usually a non-immune intolerance rather than an allergy
	severe                bool // reactions are commonly anaphylactic
}

var allergens = []allergen{
	{systemATC, "J01CE02", "Fenoksymetylpenicillin", "medication", 30, false, false},
	{systemATC, "J01C", "Betalaktamantibakterier, penicilliner", "medication", 25, false, false},
	{systemATC, "J01CA04", "Amoksicillin", "medication", 10, false, false},
	{systemATC, "J01DB01", "Cefaleksin", "medication", 4, false, false},
	{systemATC, "J01EE01", "Sulfametoksazol og trimetoprim", "medication", 8, false, false},
	{systemATC, "J01FA09", "Klaritromycin", "medication", 3, true, false},
	{systemATC, "J01MA02", "Ciprofloksacin", "medication", 3, false, false},
	{systemATC, "N02BA01", "Acetylsalisylsyre", "medication", 8, true, false},
	{systemATC, "M01AE01", "Ibuprofen", "medication", 6, true, false},
	{systemATC, "M01AB05", "Diklofenak", "medication", 4, true, false},
	{systemATC, "N02AJ06", "Kodein og paracetamol", "medication", 5, true, false},
	{systemATC, "N02AA01", "Morfin", "medication", 3, true, false},
	{systemATC, "N02AX02", "Tramadol", "medication", 3, true, false},
	{systemATC, "N03AF01", "Karbamazepin", "medication", 2, false, false},
	{systemATC, "N03AX09", "Lamotrigin", "medication", 2, false, false},
	{systemATC, "C09AA05", "Ramipril", "medication", 2, true, false},
	{systemATC, "C09AA02", "Enalapril", "medication", 2, true, false},
	{systemATC, "M04AA01", "Allopurinol", "medication", 2, false, false},
	{systemATC, "V08AB02", "Joheksol", "medication", 3, false, false},
	{systemATC, "N01AX10", "Propofol", "medication", 1, false, false},
	{systemSNOMED, "762952008", "Peanøtt", "food", 10, false, true},
	{systemSNOMED, "102263004", "Egg", "food", 4, false, false},
	{systemSNOMED, "3718001", "Kumelk", "food", 4, true, false},
	{systemSNOMED, "227037002", "Fisk", "food", 3, false, true},
	{systemSNOMED, "735029006", "Skalldyr", "food", 4, false, true},
	{systemSNOMED, "111088007", "Lateks", "environment", 3, false, true},
	{systemSNOMED, "288328004", "Bigift", "environment", 3, false, true},
	{systemSNOMED, "256259004", "Pollen", "environment", 6, false, false},
	{systemSNOMED, "256277009", "Gresspollen", "environment", 4, false, false},
	{systemSNOMED, "260147004", "Husstøvmidd", "environment", 3, false, false},
	{systemSNOMED, "264287008", "Dyrehår og -flass", "environment", 3, false, false},
}

type coding struct{ system, code, display string }

// Reaction manifestations (SNOMED CT clinical findings), split by how
// serious they are so that criticality, severity and manifestation agree.
var (
	manifestAnaphylaxis = coding{systemSNOMED, "39579001", "Anafylaksi"}
	manifestSevere      = []coding{
		manifestAnaphylaxis,
		{systemSNOMED, "41291007", "Angioødem"},
		{systemSNOMED, "267036007", "Dyspné"},
	}
	manifestMild = []coding{
		{systemSNOMED, "126485001", "Urtikaria"},
		{systemSNOMED, "271807003", "Hudutslett"},
		{systemSNOMED, "418290006", "Kløe"},
		{systemSNOMED, "422587007", "Kvalme"},
		{systemSNOMED, "422400008", "Oppkast"},
		{systemSNOMED, "62315008", "Diaré"},
		{systemSNOMED, "70076002", "Rhinitt"},
		{systemSNOMED, "9826008", "Konjunktivitt"},
	}
)

// critical is one kind of critical information with realistic texts. The
// texts are what HP write in Kjernejournal's free-text field.
type critical struct {
	code, display string
	weight        int
	texts         []string
	minAge        int
	lasting       bool // a lasting condition or device; rarely set inactive
}

var criticalTypes = []critical{
	{"anestesikomplikasjon", "Anestesikomplikasjon", 20, []string{
		"Malign hypertermi hos pasient – unngå suksametonium og inhalasjonsanestetika",
		"Vanskelig intubasjon (Cormack-Lehane grad 4), se anestesijournal",
		"Forlenget effekt av suksametonium (pseudokolinesterasemangel)",
		"Alvorlig postoperativ kvalme og oppkast ved tidligere narkoser",
	}, 1, true},
	{"kritisk-tilstand", "Kritisk tilstand", 20, []string{
		"Binyrebarksvikt (Addisons sykdom) – trenger ekstra hydrokortison ved stress og akutt sykdom",
		"Myasthenia gravis – forsiktighet med muskelrelaksantia og enkelte antibiotika",
		"Hemofili A – kontakt hemofilisenteret før inngrep",
		"Medfødt lang QT-syndrom – unngå QT-forlengende legemidler",
		"Akutt intermitterende porfyri – sjekk legemidler mot porfyrilisten",
	}, 0, true},
	{"pagaende-behandling", "Pågående behandling", 25, []string{
		"Antikoagulasjonsbehandling med warfarin, mål-INR 2,0–3,0",
		"Hemodialyse tre ganger i uken",
		"Pågående cellegiftbehandling – risiko for nøytropeni",
		"Immundempende behandling etter nyretransplantasjon",
		"Behandling med biologiske legemidler (TNF-hemmer) – økt infeksjonsrisiko",
	}, 18, false},
	{"implantat", "Implantat", 20, []string{
		"Pacemaker – MR kun etter avklaring med kardiolog",
		"Implantert hjertestarter (ICD)",
		"Mekanisk aortaklaffprotese – livslang antikoagulasjon",
		"Cochleaimplantat – ikke MR uten avklaring",
		"Dyp hjernestimulator (DBS) – diatermi kontraindisert",
	}, 0, true},
	{"endret-behandlingsrutine", "Endret behandlingsrutine", 10, []string{
		"Pasienten avslår blodoverføring, også i livstruende situasjoner",
		"Individuell plan ved langvarige epileptiske anfall: bukkal midazolam etter 5 minutter",
		"Skal ikke ha benzodiazepiner – tidligere paradoksal reaksjon",
	}, 0, true},
	{"smitte", "Smitte", 12, []string{
		"MRSA-bærer – isoleres ved innleggelse",
		"ESBL-bærer – kontaktsmitteregime ved innleggelse",
		"VRE-bærer",
		"Kronisk hepatitt B",
	}, 0, false},
}

// drug is a medicine dispensed on e-prescription, as the prescription
// intermediary reports it: ATC substance and the product's Norwegian name.
type drug struct {
	atc, substance string
	products       []string
	dosages        []string
	minAge         int
	sex            byte   // 'F' or 'M' when prescribed to one sex only, 0 otherwise
	chronic        bool   // long-term use; short courses end within weeks
	weight         [3]int // relative frequency for ages <18, 18-64, 65+
}

var drugs = []drug{
	{"C10AA01", "Simvastatin", []string{"Simvastatin Sandoz tablett 20 mg", "Zocor tablett 40 mg"}, []string{"1 tablett om kvelden"}, 35, 0, true, [3]int{0, 12, 30}},
	{"C10AA05", "Atorvastatin", []string{"Atorvastatin Krka tablett 20 mg", "Lipitor tablett 40 mg"}, []string{"1 tablett daglig"}, 35, 0, true, [3]int{0, 15, 35}},
	{"C07AB02", "Metoprolol", []string{"Selo-Zok depottablett 50 mg", "Selo-Zok depottablett 100 mg"}, []string{"1 tablett om morgenen"}, 30, 0, true, [3]int{0, 8, 25}},
	{"C08CA01", "Amlodipin", []string{"Amlodipin Bluefish tablett 5 mg", "Norvasc tablett 10 mg"}, []string{"1 tablett daglig"}, 30, 0, true, [3]int{0, 10, 25}},
	{"C09CA01", "Losartan", []string{"Cozaar tablett 50 mg", "Losartan Teva tablett 100 mg"}, []string{"1 tablett daglig"}, 30, 0, true, [3]int{0, 10, 22}},
	{"C09AA05", "Ramipril", []string{"Triatec tablett 5 mg", "Ramipril Actavis kapsel 10 mg"}, []string{"1 tablett daglig"}, 35, 0, true, [3]int{0, 5, 12}},
	{"B01AC06", "Acetylsalisylsyre", []string{"Albyl-E enterotablett 75 mg"}, []string{"1 tablett daglig"}, 40, 0, true, [3]int{0, 5, 30}},
	{"B01AF02", "Apiksaban", []string{"Eliquis tablett 5 mg", "Eliquis tablett 2,5 mg"}, []string{"1 tablett morgen og kveld"}, 45, 0, true, [3]int{0, 3, 20}},
	{"B01AF01", "Rivaroksaban", []string{"Xarelto tablett 20 mg"}, []string{"1 tablett daglig til kveldsmat"}, 45, 0, true, [3]int{0, 2, 12}},
	{"B01AA03", "Warfarin", []string{"Marevan tablett 2,5 mg"}, []string{"Dosering etter INR, se doseringskort"}, 40, 0, true, [3]int{0, 1, 5}},
	{"C03CA01", "Furosemid", []string{"Furix tablett 40 mg", "Diural tablett 20 mg"}, []string{"1 tablett om morgenen", "1–2 tabletter om morgenen etter vekt"}, 50, 0, true, [3]int{0, 1, 15}},
	{"C03DA01", "Spironolakton", []string{"Spirix tablett 25 mg"}, []string{"1 tablett daglig"}, 50, 0, true, [3]int{0, 1, 6}},
	{"A10BA02", "Metformin", []string{"Metformin Teva tablett 500 mg", "Glucophage tablett 850 mg"}, []string{"1 tablett 2 ganger daglig til måltid", "1 tablett 3 ganger daglig til måltid"}, 30, 0, true, [3]int{0, 8, 15}},
	{"A10BK01", "Dapagliflozin", []string{"Forxiga tablett 10 mg"}, []string{"1 tablett daglig"}, 35, 0, true, [3]int{0, 3, 6}},
	{"A10BJ06", "Semaglutid", []string{"Ozempic injeksjonsvæske 1 mg"}, []string{"1 injeksjon subkutant én gang i uken"}, 30, 0, true, [3]int{0, 4, 4}},
	{"A10AE04", "Insulin glargin", []string{"Lantus injeksjonsvæske 100 E/ml", "Abasaglar injeksjonsvæske 100 E/ml"}, []string{"Etter skjema, ca. 20 E subkutant om kvelden"}, 8, 0, true, [3]int{2, 2, 4}},
	{"A02BC01", "Omeprazol", []string{"Omeprazol Mylan enterokapsel 20 mg", "Losec MUPS tablett 20 mg"}, []string{"1 kapsel daglig før frokost"}, 18, 0, true, [3]int{0, 8, 12}},
	{"A02BC05", "Esomeprazol", []string{"Nexium enterotablett 20 mg", "Esomeprazol Krka enterokapsel 40 mg"}, []string{"1 tablett daglig før frokost"}, 18, 0, true, [3]int{0, 6, 10}},
	{"H03AA01", "Levotyroksinnatrium", []string{"Levaxin tablett 50 mikrog", "Levaxin tablett 100 mikrog"}, []string{"1 tablett om morgenen på tom mage"}, 10, 0, true, [3]int{1, 8, 12}},
	{"N06AB10", "Escitalopram", []string{"Cipralex tablett 10 mg", "Escitalopram Sandoz tablett 10 mg"}, []string{"1 tablett daglig"}, 15, 0, true, [3]int{1, 8, 5}},
	{"N06AB06", "Sertralin", []string{"Zoloft tablett 50 mg", "Sertralin Hexal tablett 50 mg"}, []string{"1 tablett daglig"}, 15, 0, true, [3]int{1, 6, 3}},
	{"N06AX11", "Mirtazapin", []string{"Remeron tablett 15 mg", "Mirtazapin Orifarm tablett 30 mg"}, []string{"1 tablett om kvelden"}, 18, 0, true, [3]int{0, 3, 6}},
	{"N05CF01", "Zopiklon", []string{"Imovane tablett 7,5 mg", "Zopiclone Actavis tablett 5 mg"}, []string{"1 tablett ved behov om kvelden", "½–1 tablett ved behov om kvelden"}, 18, 0, false, [3]int{0, 6, 10}},
	{"N05BA04", "Oksazepam", []string{"Sobril tablett 10 mg"}, []string{"1 tablett inntil 3 ganger daglig ved behov"}, 18, 0, false, [3]int{0, 3, 5}},
	{"N05BA01", "Diazepam", []string{"Vival tablett 5 mg", "Stesolid tablett 5 mg"}, []string{"1 tablett ved behov, maks 2 per døgn"}, 18, 0, false, [3]int{0, 2, 2}},
	{"N02BE01", "Paracetamol", []string{"Paracet tablett 500 mg", "Pinex tablett 500 mg", "Paracet mikstur 24 mg/ml"}, []string{"2 tabletter inntil 4 ganger daglig ved behov", "1–2 tabletter ved behov, maks 8 per døgn"}, 0, 0, false, [3]int{10, 10, 18}},
	{"N02AJ06", "Kodein og paracetamol", []string{"Paralgin forte tablett 400 mg/30 mg", "Pinex Forte tablett 500 mg/30 mg"}, []string{"1–2 tabletter inntil 3 ganger daglig ved behov"}, 18, 0, false, [3]int{0, 6, 6}},
	{"N02AA05", "Oksykodon", []string{"OxyNorm kapsel 5 mg", "OxyContin depottablett 10 mg"}, []string{"1 kapsel inntil 4 ganger daglig ved behov", "1 tablett morgen og kveld"}, 18, 0, false, [3]int{0, 2, 4}},
	{"M01AE01", "Ibuprofen", []string{"Ibux tablett 400 mg", "Ibux mikstur 20 mg/ml"}, []string{"1 tablett inntil 3 ganger daglig til mat ved behov"}, 0, 0, false, [3]int{6, 10, 4}},
	{"M01AE02", "Naproksen", []string{"Naprosyn enterotablett 500 mg", "Napren-E enterotablett 500 mg"}, []string{"1 tablett 2 ganger daglig til mat i 5 dager"}, 16, 0, false, [3]int{0, 6, 3}},
	{"N03AX16", "Pregabalin", []string{"Lyrica kapsel 75 mg", "Pregabalin Sandoz kapsel 150 mg"}, []string{"1 kapsel morgen og kveld"}, 18, 0, true, [3]int{0, 3, 4}},
	{"R03AK07", "Formoterol og budesonid", []string{"Symbicort Turbuhaler inhalasjonspulver 160/4,5 mikrog"}, []string{"1–2 inhalasjoner morgen og kveld"}, 6, 0, true, [3]int{4, 6, 8}},
	{"R03AC02", "Salbutamol", []string{"Ventoline Evohaler inhalasjonsaerosol 0,1 mg/dose", "Airomir Autohaler 0,1 mg/dose"}, []string{"1–2 inhalasjoner ved behov"}, 2, 0, false, [3]int{10, 6, 6}},
	{"R03AK06", "Salmeterol og flutikason", []string{"Seretide Diskus inhalasjonspulver 50/250 mikrog"}, []string{"1 inhalasjon morgen og kveld"}, 12, 0, true, [3]int{2, 3, 5}},
	{"R06AE07", "Cetirizin", []string{"Zyrtec tablett 10 mg", "Cetirizin Mylan tablett 10 mg"}, []string{"1 tablett daglig i pollensesongen"}, 2, 0, false, [3]int{10, 8, 2}},
	{"R06AX27", "Desloratadin", []string{"Aerius tablett 5 mg"}, []string{"1 tablett daglig ved behov"}, 12, 0, false, [3]int{4, 5, 1}},
	{"H02AB06", "Prednisolon", []string{"Prednisolon Actavis tablett 5 mg"}, []string{"8 tabletter daglig i 5 dager", "Nedtrappende dose etter skjema"}, 1, 0, false, [3]int{2, 3, 5}},
	{"M04AA01", "Allopurinol", []string{"Allopurinol Orifarm tablett 100 mg", "Zyloric tablett 300 mg"}, []string{"1 tablett daglig"}, 40, 0, true, [3]int{0, 2, 5}},
	{"M05BA04", "Alendronsyre", []string{"Alendronat Sandoz tablett 70 mg"}, []string{"1 tablett én gang i uken, fastende med et stort glass vann"}, 50, 'F', true, [3]int{0, 2, 10}},
	{"A12AX", "Kalsium, kombinasjoner med vitamin D", []string{"Calcigran Forte tyggetablett 1000 mg/800 IE"}, []string{"1 tablett daglig"}, 50, 0, true, [3]int{0, 2, 12}},
	{"G04CA02", "Tamsulosin", []string{"Omnic depottablett 0,4 mg", "Tamsulosin Teva depotkapsel 0,4 mg"}, []string{"1 tablett daglig"}, 50, 'M', true, [3]int{0, 2, 12}},
	{"G03AA07", "Levonorgestrel og etinyløstradiol", []string{"Microgynon tablett 0,15 mg/0,03 mg", "Oralcon tablett"}, []string{"1 tablett daglig i 21 dager, deretter 7 dagers pause"}, 15, 'F', true, [3]int{6, 8, 0}},
	{"N06BA04", "Metylfenidat", []string{"Ritalin Uno kapsel 20 mg", "Concerta depottablett 36 mg"}, []string{"1 tablett om morgenen"}, 6, 0, true, [3]int{6, 3, 0}},
	{"L04AX03", "Metotreksat", []string{"Metotreksat Orion tablett 2,5 mg", "Metoject injeksjonsvæske 15 mg"}, []string{"6 tabletter én gang i uken, samme ukedag", "1 injeksjon subkutant én gang i uken"}, 18, 0, true, [3]int{0, 2, 2}},
	{"J01CE02", "Fenoksymetylpenicillin", []string{"Apocillin tablett 660 mg", "Weifapenin mikstur 50 mg/ml"}, []string{"1 tablett 4 ganger daglig i 7 dager", "1 tablett 3 ganger daglig i 10 dager"}, 0, 0, false, [3]int{12, 10, 6}},
	{"J01CA04", "Amoksicillin", []string{"Amoxicillin Mylan kapsel 500 mg", "Imacillin mikstur 50 mg/ml"}, []string{"1 kapsel 3 ganger daglig i 7 dager"}, 0, 0, false, [3]int{8, 4, 4}},
	{"J01CA08", "Pivmecillinam", []string{"Selexid tablett 200 mg"}, []string{"1 tablett 3 ganger daglig i 3 dager", "1 tablett 3 ganger daglig i 5 dager"}, 12, 'F', false, [3]int{2, 8, 8}},
	{"J01XE01", "Nitrofurantoin", []string{"Furadantin tablett 50 mg"}, []string{"1 tablett 3 ganger daglig i 5 dager"}, 12, 'F', false, [3]int{1, 4, 4}},
	{"J01FA09", "Klaritromycin", []string{"Klacid tablett 250 mg"}, []string{"1 tablett morgen og kveld i 7 dager"}, 0, 0, false, [3]int{2, 3, 3}},
}

// visitReason is a reason for a hospital visit as the national patient
// register codes it (ICD-10), with the department and kinds of contact it
// usually leads to.
type visitReason struct {
	code, display string
	department    string
	classes       string // letters of the contact kinds: I inpatient, A outpatient, E emergency
	minAge        int
	maxAge        int
	sex           byte
	weight        [3]int // ages <18, 18-64, 65+
}

var visitReasons = []visitReason{
	{"I21.4", "Akutt subendokardialt hjerteinfarkt", "Hjertemedisinsk avdeling", "IE", 35, 120, 0, [3]int{0, 3, 8}},
	{"I48.0", "Paroksysmal atrieflimmer", "Hjertemedisinsk avdeling", "AE", 30, 120, 0, [3]int{0, 3, 8}},
	{"I50.9", "Hjertesvikt, uspesifisert", "Medisinsk avdeling", "IA", 45, 120, 0, [3]int{0, 1, 8}},
	{"R07.4", "Brystsmerter, uspesifisert", "Akuttmottaket", "E", 18, 120, 0, [3]int{0, 6, 5}},
	{"J18.9", "Pneumoni, uspesifisert", "Medisinsk avdeling", "IE", 0, 120, 0, [3]int{3, 3, 10}},
	{"J44.1", "Kronisk obstruktiv lungesykdom med akutt forverring", "Lungeavdelingen", "IE", 40, 120, 0, [3]int{0, 1, 6}},
	{"J45.9", "Astma, uspesifisert", "Barne- og ungdomsklinikken", "A", 1, 17, 0, [3]int{6, 0, 0}},
	{"J21.9", "Akutt bronkiolitt, uspesifisert", "Barne- og ungdomsklinikken", "IE", 0, 1, 0, [3]int{10, 0, 0}},
	{"H66.9", "Otitis media, uspesifisert", "Øre-nese-hals-avdelingen", "A", 0, 17, 0, [3]int{6, 0, 0}},
	{"S72.0", "Brudd på lårhals", "Ortopedisk avdeling", "I", 55, 120, 0, [3]int{0, 0, 7}},
	{"S52.5", "Brudd i nedre ende av radius", "Skadepoliklinikken", "EA", 5, 120, 0, [3]int{4, 4, 5}},
	{"S06.0", "Hjernerystelse", "Akuttmottaket", "E", 0, 120, 0, [3]int{6, 3, 2}},
	{"K35.8", "Akutt appendisitt, annen og uspesifisert", "Gastrokirurgisk avdeling", "I", 5, 80, 0, [3]int{4, 3, 1}},
	{"K80.2", "Gallestein uten kolecystitt", "Gastrokirurgisk avdeling", "A", 20, 120, 0, [3]int{0, 4, 3}},
	{"M17.1", "Annen primær kneleddsartrose", "Ortopedisk poliklinikk", "A", 45, 120, 0, [3]int{0, 3, 6}},
	{"I63.9", "Hjerneinfarkt, uspesifisert", "Nevrologisk avdeling", "I", 40, 120, 0, [3]int{0, 1, 6}},
	{"N39.0", "Urinveisinfeksjon med uspesifisert lokalisasjon", "Medisinsk avdeling", "IE", 0, 120, 0, [3]int{1, 2, 6}},
	{"E11.9", "Diabetes mellitus type 2 uten komplikasjoner", "Endokrinologisk poliklinikk", "A", 30, 120, 0, [3]int{0, 3, 4}},
	{"E10.9", "Diabetes mellitus type 1 uten komplikasjoner", "Barne- og ungdomsklinikken", "A", 2, 17, 0, [3]int{3, 0, 0}},
	{"O80", "Spontan fødsel av enkeltfoster", "Kvinneklinikken", "I", 18, 45, 'F', [3]int{0, 10, 0}},
	{"C50.9", "Ondartet svulst i bryst, uspesifisert", "Kreftavdelingen", "A", 30, 120, 'F', [3]int{0, 2, 3}},
	{"C61", "Ondartet svulst i blærehalskjertel", "Urologisk avdeling", "A", 50, 120, 'M', [3]int{0, 1, 4}},
	{"F32.1", "Moderat depressiv episode", "Distriktspsykiatrisk senter, poliklinikk", "A", 13, 120, 0, [3]int{2, 4, 1}},
	{"A09.9", "Gastroenteritt og kolitt av uspesifisert opprinnelse", "Medisinsk avdeling", "E", 0, 120, 0, [3]int{4, 2, 3}},
	{"U07.1", "Covid-19, virus påvist", "Medisinsk avdeling", "I", 0, 120, 0, [3]int{1, 2, 5}},
}
